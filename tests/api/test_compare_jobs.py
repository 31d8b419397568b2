"""``POST /api/jobs/compare`` for the compare page: curves, finals and the hyperparameters that differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tunelab.jobs.comparison import differing, flatten


def _job(client: TestClient, chat_file: Path, name: str, **hyper: Any) -> str:
    config = {
        "model": "tiny-model",
        "dataset": str(chat_file),
        "hyperparameters": {"max_steps": 2, **hyper},
    }
    created = client.post(
        "/api/jobs", json={"name": name, "configuration": config, "submit": False}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_flatten_and_differing() -> None:
    assert flatten({"lora": {"r": 8, "alpha": 16.0}, "seed": 1, "dataset_mix": []}) == {
        "lora.r": 8, "lora.alpha": 16.0, "seed": 1, "dataset_mix": []}  # fmt: skip
    assert differing([{"a": 1, "b": [1]}, {"a": 1, "b": [2]}, {"a": 1}]) == ["b"]
    assert differing([{"a": 1.0}, {"a": 1.0}]) == []


def test_compare_gives_curves_finals_and_differing_hyperparameters(
    client: TestClient, sessions: sessionmaker[Session], chat_file: Path
) -> None:
    from tunelab.jobs.tailer import upsert_metric

    first = _job(client, chat_file, "lr-1e-4", learning_rate=1e-4)
    # the default learning rate spelled out differs; the default lora.alpha spelled out does not
    second = _job(client, chat_file, "lr-3e-4", learning_rate=3e-4, lora={"r": 4, "alpha": 32})
    with sessions() as session:
        for job, losses in ((first, (2.0, 1.5, 1.2)), (second, (2.0, 1.1, 0.9))):
            for step, loss in enumerate(losses, start=1):
                upsert_metric(
                    session,
                    job,
                    {
                        "step": step,
                        "loss": loss,
                        **({"eval_loss": loss + 0.1} if step == 3 else {}),
                    },
                )
        session.commit()
    result = client.post("/api/jobs/compare", json={"job_ids": [first, second],
                                                   "metrics": ["loss", "eval_loss", "final_loss"]}).json()  # fmt: skip
    assert result["differing"] == ["learning_rate", "lora.r"]
    one, two = result["jobs"]
    assert one["loss"]["steps"] == [1, 2, 3] and one["loss"]["values"] == [2.0, 1.5, 1.2]
    assert two["eval_loss"]["final"] == 1.0 and two["final_loss"]["final"] == 0.9
    assert one["hyperparameters"]["learning_rate"] == 1e-4 and two["hyperparameters"]["lora.r"] == 4
    assert one["hyperparameters"]["lora.r"] == 16  # the default, filled in
    assert one["hyperparameters"]["model"] == "tiny-model" and "name" not in one["hyperparameters"]
