"""/api/evaluations end to end on the tiny model, the errors it answers, and a job's results export."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from tests.api.conftest import assert_error, client, sessions, settings  # noqa: F401

from tunelab.store import catalog


def _wait(client: TestClient, evaluation_id: str, timeout_s: float = 300) -> dict[str, Any]:  # noqa: F811
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(f"/api/evaluations/{evaluation_id}").json()
        if body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"evaluation {evaluation_id} did not finish")


def _setup(client: TestClient, sessions: sessionmaker[Session], tiny_model_dir: Path, qa_file: Path) -> str:  # noqa: F811
    with sessions() as session:
        catalog.add_model(session, "tiny", source="local", location=str(tiny_model_dir))
    with qa_file.open("rb") as handle:
        response = client.post("/api/datasets", files={"file": ("qa.jsonl", handle)}, data={"name": "qa"})
    assert response.status_code == 201, response.text
    return "qa"


def test_create_run_list_and_show(client: TestClient, sessions: sessionmaker[Session], tiny_model_dir: Path,  # noqa: F811
                                  qa_file: Path) -> None:  # fmt: skip
    dataset = _setup(client, sessions, tiny_model_dir, qa_file)
    response = client.post("/api/evaluations", json={"model": "tiny", "data": dataset, "metrics": ["bleu", "rouge", "loss"],
                                                     "probe": False, "max_new_tokens": 4, "name": "first"})  # fmt: skip
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["status"] in ("queued", "running") and created["name"] == "first"
    done = _wait(client, created["id"])
    assert done["status"] == "completed", done["error"]
    summary = done["summary"]["summary"]["model"]
    assert set(summary) >= {"bleu", "rouge1", "rouge2", "rougeL", "eval_loss", "perplexity"}
    assert summary["eval_loss"] > 0 and summary["perplexity"] > 1
    assert len(done["rows"]) == 4
    row = done["rows"][0]
    assert row["prompt"] == "What is the capital of France?" and row["reference"] == "Paris"
    assert set(row["scores"]["model"]) >= {"bleu", "rougeL", "eval_loss"} and "model" in row["outputs"]
    listed = client.get("/api/evaluations").json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == created["id"]
    assert listed["data"][0].get("rows") is None  # rows only when one evaluation is shown
    chart = client.get(f"/api/evaluations/{created['id']}/chart.svg")
    assert chart.status_code == 200 and chart.headers["content-type"].startswith("image/svg+xml")
    assert chart.text.startswith("<svg") and "bleu" in chart.text


def test_errors_are_clear_and_store_nothing(client: TestClient, sessions: sessionmaker[Session],  # noqa: F811
                                            tiny_model_dir: Path, qa_file: Path) -> None:  # fmt: skip
    dataset = _setup(client, sessions, tiny_model_dir, qa_file)
    error = assert_error(client.post("/api/evaluations", json={"model": "tiny", "data": dataset, "metrics": ["blue"]}),
                         422, "unknown_metric")  # fmt: skip
    assert "bleu" in error["hint"] and error["details"]["unknown"] == ["blue"]
    error = assert_error(client.post("/api/evaluations", json={"model": "tiny", "data": dataset,
                                                               "reference_column": "gold"}), 422, "missing_column")  # fmt: skip
    assert "columns found: messages" in error["message"]
    assert_error(client.post("/api/evaluations", json={"model": "nope", "data": dataset}), 404, "not_found")
    assert_error(client.post("/api/evaluations", json={"model": "tiny", "probe": False}), 422, "invalid_input")
    assert_error(client.post("/api/evaluations", json={"model": "tiny", "data": "/etc/passwd"}), 422, "path_not_allowed")
    assert_error(client.post("/api/evaluations", json={"model": "tiny", "data": dataset, "judge": {"url": "ftp://x"}}),
                 422, "invalid_input")  # fmt: skip
    assert_error(client.get("/api/evaluations/ev-missing"), 404, "not_found")
    assert client.get("/api/evaluations").json()["count"] == 0


def test_job_metrics_export(client: TestClient, sessions: sessionmaker[Session], qa_file: Path) -> None:  # noqa: F811
    from tunelab.jobs.service import create_job
    from tunelab.store.models import Metric

    with sessions() as session:
        job = create_job(session, {"model": "tiny-model", "dataset": str(qa_file)}, name="export", submit=False)
        for step, loss in ((1, 2.5), (2, 2.0), (3, 1.5)):
            session.add(Metric(job_id=job.id, step=step, loss=loss, eval_loss=loss + 0.2 if step == 3 else None,
                               learning_rate=1e-4, data={"mfu": 0.1 * step, "note": "x"}))  # fmt: skip
        session.commit()
        job_id = job.id
    response = client.get(f"/api/jobs/{job_id}/metrics.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["loss"] for r in table] == ["2.5", "2.0", "1.5"] and table[2]["eval_loss"] == "1.7"
    assert table[0]["mfu"] == "0.1"
    body = client.get(f"/api/jobs/{job_id}/metrics.json").json()
    assert body["final"]["loss"] == 1.5 and body["final"]["eval_loss"] == 1.7 and len(body["steps"]) == 3
    assert body["evaluation"] is None and body["regression"] is None
    svg = client.get(f"/api/jobs/{job_id}/charts/loss.svg")
    assert svg.status_code == 200 and "<polyline" in svg.text and "eval_loss" in svg.text
    assert_error(client.get("/api/jobs/nope/metrics.csv"), 404, "not_found")
