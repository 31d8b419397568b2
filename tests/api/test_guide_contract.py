"""The workflow guide, call for call, against a real ``tunelab serve --training-port`` on free ports.

Every request the guide prints for datasets, models, configurations, jobs, the
training monitor, comparison and health is sent as printed (bodies copied from
the seed) with only the host and port changed; then a real job on the tiny
model is followed over ``/ws/training/{id}`` to completion, through a
reconnect, and every field the guide shows or its SDK example reads is checked.
Ids the guide made up (``job_123``) get the answer an unknown id gets, and then
the real ids are used in their place.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import assert_error
from tests.api.guide_bodies import COMPARE_BODY, JOB_BODY, MODEL_BODY
from tests.api.live import env_for, free_port, stop, wait_healthy

from tunelab.client import Client

ROWS = [(f"How do I reset my password, case {i}?", f"Open Settings, choose Security and press Reset ({i}).")
        for i in range(24)]  # fmt: skip


@pytest.fixture
def studio(tunelab_home: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """``tunelab serve`` with one embedded worker on two ports: the guide's main API and training API."""
    main, training = free_port(), free_port()
    log = tmp_path / "serve.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tunelab", "serve", "--port", str(main), "--training-port", str(training),
             "--log-level", "warning"],
            env=env_for(tunelab_home), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{main}")
        wait_healthy(f"http://127.0.0.1:{training}")
        yield {"main": f"http://127.0.0.1:{main}", "training": f"http://127.0.0.1:{training}", "log": str(log)}
    finally:
        stop(process)


@pytest.fixture
def dataset_csv(tmp_path: Path) -> Path:
    path = tmp_path / "dataset.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["input", "output"])
        writer.writerows(ROWS)
    return path


def _keys(item: dict[str, Any], *names: str) -> None:
    missing = [name for name in names if name not in item]
    assert not missing, (missing, item)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_guide_call_for_call(studio: dict[str, str], dataset_csv: Path, tiny_model_dir: Path) -> None:
    main, training = studio["main"], studio["training"]
    http = httpx.Client(timeout=60)

    # 1.1 Dataset upload: curl -X POST /api/preview-csv -F "file=@dataset.csv"
    with dataset_csv.open("rb") as handle:
        preview = http.post(f"{main}/api/preview-csv", files={"file": ("dataset.csv", handle)}).json()
    assert preview["filename"] == "dataset.csv" and preview["columns"] == ["input", "output"]
    assert preview["data"][0] == {"input": ROWS[0][0], "output": ROWS[0][1]}
    assert preview["validation_errors"] == []
    assert preview["statistics"] == {"total_rows": 24, "total_columns": 2, "has_required_columns": True}
    with Client(main) as client:
        dataset = client.upload_dataset(dataset_csv, name="Customer Support Q&A")  # the guide's name
    assert dataset["name"] == "Customer Support Q&A"

    # 2.2 API search: curl "/api/models/search?query=llama&limit=5"
    results = http.get(f"{main}/api/models/search?query=llama&limit=5").json()
    assert isinstance(results, list) and 1 <= len(results) <= 5  # offline: the local catalog answers
    for item in results:
        _keys(item, "id", "name", "provider", "category", "parameters", "downloads", "likes", "description")
    # 2.3 Add model to collection, check availability
    added = http.post(f"{main}/api/models", json=MODEL_BODY)
    assert added.status_code == 201, added.text
    assert added.json()["id"] == MODEL_BODY["id"] and added.json()["name"] == MODEL_BODY["name"]
    check = http.get(f"{main}/api/models/check/meta-llama%2FLlama-3.1-8B-Instruct").json()
    assert check["id"] == MODEL_BODY["id"] and check["available"] is False and check["reason"]

    # 3.4 Load best configuration: nothing evaluated yet
    assert_error(http.get(f"{main}/api/configurations/best?mode=manual"), 404, "not_found")

    # 4.1 Create fine-tuning job, the body as printed (its Hub model cannot train offline: cancel it)
    created = http.post(f"{main}/api/jobs", json=JOB_BODY)
    assert created.status_code == 201, created.text
    guide_job = created.json()
    assert guide_job["jobUid"] == guide_job["id"] and guide_job["config"]["dataset"] == dataset["id"]
    assert guide_job["save_options"]["model_name"] == "customer-support-llama-v1"
    http.post(f"{main}/api/jobs/{guide_job['id']}/cancel")

    # The SDK example's job: the guide's job_config with the tiny model as the selected model
    job_config = {
        "name": "Customer Support Fine-tuning",
        "description": "Fine-tune Llama for customer support",
        "configuration": {
            "model": {"id": str(tiny_model_dir), "name": "tiny", "provider": "tunelab"},  # a search result's shape
            "dataset": {"uid": dataset["id"]},
            "hyperparameters": {"learning_rate": 0.0002, "batch_size": 8, "epochs": 3},
        },
    }
    with Client(main) as client:
        job_result = client.submit_job(job_config)
    job_id = job_result["jobUid"]
    assert job_id == job_result["id"]

    # 5.2 Training data streams: ws://...:8001/ws/training/{id}, through one reconnect
    messages: list[dict[str, Any]] = []
    with Client(training) as monitor:
        for data in monitor.follow_training(job_id):
            messages.append(data)
            if sum(m["type"] == "training" for m in messages) == 2:
                break  # drop the connection mid-run...
        cursor = messages[-1]["id"]
        messages.extend(monitor.follow_training(job_id, after=cursor))  # ...and resume from the cursor
    steps = [m for m in messages if m["type"] == "training"]
    assert messages[-1]["type"] == "end" and messages[-1]["status"] == "completed", Path(studio["log"]).read_text()[-3000:]
    total = steps[0]["total"]
    assert total == 9 and [m["iteration"] for m in steps] == list(range(1, total + 1))  # no gap, no repeat
    ids = [m["id"] for m in messages[:-1]]
    assert ids == sorted(set(ids)) and messages[-1]["id"] == ids[-1]  # end repeats the last cursor
    for data in steps:
        _keys(data, "training", "iteration", "total", "progress", "eta_s", "resources")
        _keys(data["training"], "train_loss", "validation_loss", "epoch", "learning_rate", "grad_norm")
        line = f"Epoch: {data['training']['epoch']}, Loss: {data['training']['train_loss']:.4f}"  # the SDK callback
        assert line.startswith("Epoch: ") and isinstance(data["resources"], dict) and 0 < data["progress"] <= 1
        assert data["training"]["learning_rate"] >= 0 and data["training"]["grad_norm"] >= 0
    assert steps[0]["training"]["learning_rate"] > 0 and steps[-1]["resources"]  # a worker sample arrived
    assert steps[-1]["progress"] == 1.0 and steps[-1]["eta_s"] == 0.0
    evaluation = [m for m in messages if m["type"] == "evaluation"]
    assert evaluation and evaluation[-1]["validation_loss"] > 0  # the tuned model measured at the end
    statuses = [m["status"] for m in messages if m["type"] == "status"]
    assert statuses[-2:] == ["running", "completed"]

    # 5.2 REST polling on the training port
    summary = http.get(f"{training}/api/training/summary").json()
    assert summary["counts"]["completed"] == 1 and summary["counts"]["cancelled"] == 1
    assert summary["queue"]["average_wait_s"] >= 0
    losses = http.get(f"{training}/api/training/losses?last_n=50").json()
    assert losses["job_id"] == job_id and len(losses["train_losses"]) == total
    assert isinstance(losses["validation_losses"], list)  # eval lines only with eval_steps > 0
    resources = http.get(f"{training}/api/training/resources/current").json()
    assert resources["cpu_percent"] >= 0 and resources["ram_total"] > 0
    status = http.get(f"{training}/api/training/status/{job_id}").json()  # TrainingMonitor.get_job_status
    assert status["status"] == "completed" and status["iteration"] == total and status["progress"] == 1.0

    # 3.4 Load best configuration: the job's eval loss ranked its configuration
    best = http.get(f"{main}/api/configurations/best?mode=manual")
    assert best.status_code == 200, best.text
    assert best.json()["job_id"] == job_id and best.json()["mode"] == "manual" and len(best.json()["uid"]) == 26

    # Configuration comparison: the guide's ids are unknown here; then the real ones
    assert_error(http.post(f"{main}/api/jobs/compare", json=COMPARE_BODY), 404, "not_found")
    compared = http.post(f"{main}/api/jobs/compare",
                         json={**COMPARE_BODY, "job_ids": [job_id]}).json()["jobs"][0]  # fmt: skip
    for metric in COMPARE_BODY["metrics"]:
        assert compared[metric]["final"] is not None, metric
    assert compared["training_time"]["final"] > 0 and compared["gpu_hours"]["final"] >= 0

    # Health checks: curl -f http://localhost:$port/health on both API ports
    for url in (main, training):
        assert http.get(f"{url}/health").json()["status"] == "ok"


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "guide_client.py"
EXAMPLE_DATA = EXAMPLE.parent / "data" / "customer_support.csv"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_guide_sdk_example_runs_as_documented(studio: dict[str, str], tiny_model_dir: Path) -> None:
    """``examples/guide_client.py`` with the shipped CSV, as docs/api.md runs it (tiny model, few steps)."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(EXAMPLE_DATA), "--url", studio["main"],
         "--training-url", studio["training"], "--model", str(tiny_model_dir),
         "--hyperparameters", '{"max_steps": 3}'],
        capture_output=True, text=True, timeout=540, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "'total_rows': 24, 'total_columns': 2, 'has_required_columns': True" in done.stdout
    assert "status: completed" in done.stdout
    assert "Loss:" in done.stdout and '"status": "completed"' in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_dataset_named_in_chinese_uploads_lists_and_trains(
    studio: dict[str, str], dataset_csv: Path, tiny_model_dir: Path
) -> None:
    with Client(studio["main"]) as client:
        stored = client.upload_dataset(dataset_csv, name="客服数据")
        assert stored["name"] == "客服数据"
        assert "客服数据" in [row["name"] for row in client.list_datasets()["data"]]
        job = client.submit_job({
            "name": "客服 微调",
            "configuration": {"model": str(tiny_model_dir), "dataset": {"name": "客服数据"},
                              "hyperparameters": {"max_steps": 2, "batch_size": 4}},
        })  # fmt: skip
        final = client.wait_job(job["id"], timeout_s=480)
    assert final["status"] == "completed", final
    assert final["name"] == "客服 微调"
