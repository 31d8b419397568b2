"""The guide's job body (as printed), flat hyperparameter names, modelSaving, resources, compare totals."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import assert_error
from tests.api.guide_bodies import HYPERPARAMETERS, JOB_BODY

GUIDE_JOB = JOB_BODY
GUIDE_HYPERPARAMETERS = HYPERPARAMETERS


@pytest.fixture
def support_dataset(client: TestClient, chat_file: Path) -> dict[str, Any]:
    """The guide's dataset name, uploaded for real."""
    with chat_file.open("rb") as handle:
        response = client.post("/api/datasets", files={"file": ("support.jsonl", handle)},
                               data={"name": "Customer Support Q&A"})  # fmt: skip
    assert response.status_code == 201, response.text
    return response.json()


def test_the_guides_body_as_printed_creates_a_job(client: TestClient, support_dataset: dict[str, Any]) -> None:
    response = client.post("/api/jobs", json=GUIDE_JOB)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["jobUid"] == job["id"] and job["status"] == "queued"
    assert job["name"] == "Customer Support Fine-tuning" and job["tags"] == GUIDE_JOB["tags"]
    assert job["config"]["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert job["config"]["dataset"] == support_dataset["id"]  # the uid was unknown: the name found it
    assert job["config"]["hyperparameters"] == {"learning_rate": 0.0002, "batch_size": 8, "epochs": 3}
    assert job["save_options"]["save_model"] is True and job["save_options"]["model_name"] == "customer-support-llama-v1"
    assert job["save_options"]["push_to_hub"] is False and job["save_options"]["public"] is False
    assert "not a saved configuration" in job["warnings"][0]
    assert client.get(f"/api/jobs/{job['id']}").json()["jobUid"] == job["id"]


def test_flat_names_map_onto_trainconfig_sections(client: TestClient, support_dataset: dict[str, Any]) -> None:
    body = copy.deepcopy(GUIDE_JOB)
    body["configuration"]["hyperparameters"] = GUIDE_HYPERPARAMETERS
    job = client.post("/api/jobs", json=body).json()
    hyper = job["config"]["hyperparameters"]
    assert hyper["lora"] == {"r": 16, "alpha": 32, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}
    for key in ("warmup_steps", "weight_decay", "gradient_accumulation_steps", "max_grad_norm", "optimizer",
                "scheduler", "save_steps"):  # fmt: skip
        assert hyper[key] == GUIDE_HYPERPARAMETERS[key], key
    body["configuration"]["hyperparameters"] = {"lora_r": 8, "lora": {"r": 16}}
    assert_error(client.post("/api/jobs", json=body), 422, "config_invalid")


def test_hyperparameters_uid_loads_a_saved_configuration(client: TestClient, support_dataset: dict[str, Any]) -> None:
    dataset_id = support_dataset["id"]
    saved = client.post("/api/configurations", json={"model": "tiny", "dataset": dataset_id, "mode": "automated",
                                                     "hyperparameters": {"max_steps": 3, "lora_r": 4}}).json()  # fmt: skip
    assert saved["uid"] == saved["id"] and saved["mode"] == "automated" and saved["fields"]["lora_r"] == 4
    body = {"configuration": {"model": {"uid": "tiny"}, "dataset": {"uid": dataset_id},
                              "hyperparameters": {"uid": saved["uid"], "epochs": 2}}}  # fmt: skip
    job = client.post("/api/jobs", json=body).json()
    assert job["configuration_id"] == saved["id"] and "warnings" not in job
    assert job["config"]["hyperparameters"] == {"max_steps": 3, "lora": {"r": 4}, "epochs": 2}
    never_saved = "02" + saved["uid"][2:16] + "m" + "0" * 9  # a readable id nobody saved: its values are used
    body["configuration"]["hyperparameters"] = {"uid": never_saved}
    assert client.post("/api/jobs", json=body).json()["config"]["hyperparameters"]["epochs"] == 2
    body["configuration"]["hyperparameters"] = {"uid": "no-such-configuration"}
    assert_error(client.post("/api/jobs", json=body), 404, "not_found")


def test_model_saving_and_resources(client: TestClient, support_dataset: dict[str, Any]) -> None:
    body = copy.deepcopy(GUIDE_JOB)
    body["modelSaving"] = {"saveModel": False}
    body["resources"] = {"device": "cuda", "gpus": 2, "memory_gb": 40}
    job = client.post("/api/jobs", json=body).json()
    assert job["save_options"]["save_model"] is False
    assert job["resources"] == {"device": "cuda", "gpus": 2, "memory_gb": 40.0}
    body["resources"] = {"device": "cpu"}
    assert client.post("/api/jobs", json=body).json()["resources"] == {"device": "cpu", "gpus": 0, "memory_gb": None}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"resources": {"device": "tpu"}}, "invalid_input"),
        ({"resources": {"device": "cpu", "gpus": 2}}, "config_invalid"),
        ({"resources": {"device": "cuda", "gpus": 0}}, "config_invalid"),
        ({"resources": {"device": "mps", "gpus": 2}}, "config_invalid"),
        ({"resources": {"gpus": "two"}}, "invalid_input"),
        ({"resources": {"memory_gb": -1}}, "invalid_input"),
        ({"modelSaving": {"saveModel": "maybe"}}, "invalid_input"),
        ({"modelSaving": {"saveModel": False, "pushToHub": True, "modelName": "me/x"}}, "invalid_input"),
        ({"modelSaving": {"modelName": "bad\nname"}}, "invalid_input"),
        ({"save": {"save_model": True}}, "invalid_input"),  # save and modelSaving both given
        ({"configuration": {"model": {"name": "only a label"}, "dataset": "x"}}, "config_invalid"),
        ({"configuration": {"model": 5, "dataset": "x"}}, "invalid_input"),
        ({"configuration": {"model": "tiny", "dataset": {"uid": "nope", "name": "nope"}}}, "config_invalid"),
        ({"configuration": {"model": "tiny", "dataset": {"uid": "x"}, "hyperparameters": {"uid": 7}}}, "config_invalid"),
    ],
)
def test_bad_job_bodies_answer_4xx(client: TestClient, support_dataset: dict[str, Any], change: dict[str, Any],
                                   code: str) -> None:  # fmt: skip
    body = copy.deepcopy(GUIDE_JOB) | change
    response = client.post("/api/jobs", json=body)
    assert_error(response, 422, code)


def test_compare_totals_are_never_null_for_a_completed_job(
    client: TestClient, make_job: Callable[[str], str], sessions: Any
) -> None:
    from tunelab.jobs.tailer import upsert_metric

    done, fresh = make_job("completed"), make_job("created")
    with sessions() as session:
        for step, loss in ((1, 2.0), (2, 1.25)):
            upsert_metric(session, done, {"step": step, "loss": loss})
        session.commit()
    body = {"job_ids": [done, fresh], "metrics": ["final_loss", "training_time", "gpu_hours", "cost", "loss"]}
    result = client.post("/api/jobs/compare", json=body).json()
    totals = result["jobs"][0]
    assert totals["final_loss"]["final"] == 1.25 and totals["loss"]["final"] == 1.25
    assert totals["training_time"]["final"] >= 0 and totals["training_time"]["unit"] == "s"
    assert totals["gpu_hours"]["final"] == 0.0 and totals["cost"]["final"] == 0.0  # trained on no GPU
    assert result["jobs"][1]["training_time"]["final"] is None  # never started
    assert_error(client.post("/api/jobs/compare", json={"job_ids": "job-1"}), 422, "invalid_input")
