"""The workflow guide's ``FinetuningClient`` / ``TrainingMonitor`` example, on tunelab's SDK.

The guide's SDK example (upload a dataset, search a model, create a job, follow
its training) with ``tunelab.client.Client`` doing every call: one client on
the main API, one on the training API (``tunelab serve --training-port 8001``
serves the same app on both, so both may be the same URL).

    tunelab serve --port 8000 --training-port 8001 &
    python examples/guide_client.py examples/data/customer_support.csv

Options: ``--url`` / ``--training-url`` (default the guide's 127.0.0.1:8000 and
:8001), ``--model`` to train a given model instead of the first search result
(offline, or with a local folder), ``--query`` for the search, and
``--hyperparameters '{"max_steps": 20}'`` to add fields to the guide's three.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tunelab.client import Client


def upload_dataset(client: Client, file_path: Path, name: str, description: str) -> dict[str, Any]:
    """Preview first (the guide's /api/preview-csv), then store it when the required columns are there."""
    with file_path.open("rb") as handle:
        preview = client.request("POST", "/api/preview-csv", files={"file": (file_path.name, handle)})
    print(f"preview: {preview['statistics']} errors={preview['validation_errors']}")
    if not preview["statistics"]["has_required_columns"]:
        raise SystemExit(f"{file_path} needs 'input' and 'output' columns: {preview['validation_errors']}")
    dataset = client.upload_dataset(file_path, name=name, description=description)
    return {"uid": dataset["id"], "name": dataset["name"]}


def choose_model(client: Client, query: str, model: str | None) -> dict[str, Any]:
    """The first search result, as the guide does, unless a model was named."""
    if model:
        return {"uid": model, "name": Path(model).name}
    models = client.search_models(query, limit=5)
    if not models:
        raise SystemExit(f"no model matches {query!r}; pass --model")
    return models[0]  # a search result ({id, name, provider, ...}) is accepted as it is


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="CSV with input and output columns")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="main API")
    parser.add_argument("--training-url", default="http://127.0.0.1:8001", help="training API")
    parser.add_argument("--query", default="llama", help="model search query")
    parser.add_argument("--model", help="train this model id or folder instead of the first search result")
    parser.add_argument("--hyperparameters", default="{}", help="JSON object added to the guide's values")
    args = parser.parse_args()

    with Client(args.url) as client, Client(args.training_url) as monitor:
        # 1. Upload dataset
        dataset_result = upload_dataset(client, args.dataset, "Customer Support Dataset",
                                        "Q&A pairs for customer support fine-tuning")  # fmt: skip
        # 2. Search and select model
        selected_model = choose_model(client, args.query, args.model)
        # 3. Create training job (the guide's job_config)
        job_config = {
            "name": "Customer Support Fine-tuning",
            "description": "Fine-tune Llama for customer support",
            "configuration": {
                "model": selected_model,
                "dataset": {"uid": dataset_result["uid"]},
                "hyperparameters": {"learning_rate": 0.0002, "batch_size": 8, "epochs": 3,
                                    **json.loads(args.hyperparameters)},
            },
        }
        job_result = client.submit_job(job_config)
        job_id = job_result["jobUid"]
        print(f"job {job_id} {job_result['status']}")
        # 4. Monitor training
        for data in monitor.follow_training(job_id):
            if data["type"] == "training":
                print(f"Epoch: {data['training']['epoch']}, Loss: {data['training']['train_loss']:.4f} "
                      f"({data['iteration']}/{data['total']}, eta {data['eta_s']}s)")  # fmt: skip
            elif data["type"] == "evaluation":
                print(f"validation loss: {data['validation_loss']:.4f}")
            elif data["type"] == "status":
                print(f"status: {data['status']}")
        print(json.dumps(monitor.training_status(job_id), indent=2))
        print("recent losses:", monitor.training_losses(last_n=50, job_id=job_id)["train_losses"])


if __name__ == "__main__":
    main()
