"""GET /api/analytics checked against jobs this test creates, with known models, outcomes and times."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests.api.conftest import PATHS, assert_error

from tunelab.jobs.events import add_event, set_status
from tunelab.jobs.service import create_job, get_job
from tunelab.store.models import JobEvent, utcnow


def _job(
    sessions: sessionmaker[Session], dataset: str, model: str, status: str, hyper: dict,
    *, wait_s: float = 0.0, run_s: float | None = None, device: str | None = None,
) -> str:
    with sessions() as session:
        config = {"model": model, "dataset": dataset, "hyperparameters": hyper}
        job = create_job(session, config, name=f"{model} {status}", submit=False)
        for step in PATHS[status]:
            set_status(session, get_job(session, job.id), step)
            session.commit()
        job = get_job(session, job.id)
        if "running" in PATHS[status]:
            events = session.scalars(select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.type == "status")
                                     .order_by(JobEvent.id))
            queued = next(e for e in events if e.data["status"] == "queued")
            job.started_at = queued.created_at + timedelta(seconds=wait_s)
            if run_s is not None:
                job.tail_state = {**(job.tail_state or {}), "run_seconds": run_s}
            if device:
                add_event(session, job.id, "event", {"type": "started", "data": {"hardware": {"device": device}}})
            session.commit()
        return job.id


def test_analytics_counts_rates_waits_hours_and_choices(
    client: TestClient, sessions: sessionmaker[Session], chat_file: Path, tmp_path: Path
) -> None:
    data = str(chat_file.resolve())
    other_file = tmp_path / "other.jsonl"
    other_file.write_bytes(chat_file.read_bytes())
    other = str(other_file.resolve())
    _job(sessions, data, "model-a", "completed", {"learning_rate": 2e-4, "lora_r": 16}, wait_s=10, run_s=1800, device="cuda:0")
    _job(sessions, data, "model-a", "completed", {"learning_rate": 2e-4, "lora_r": 8}, wait_s=20, run_s=3600, device="cpu")
    _job(sessions, data, "model-b", "failed", {"learning_rate": 1e-4}, wait_s=30, run_s=360)
    _job(sessions, other, "model-a", "cancelled", {"lora_r": 16})
    _job(sessions, other, "model-c", "queued", {"learning_rate": 2e-4})

    body = client.get("/api/analytics", params={"days": 7}).json()
    assert body["days"] == 7 and len(body["jobs_per_day"]) == 7
    today = utcnow().date().isoformat()
    assert body["jobs_per_day"][-1] == {"date": today, "created": 5, "completed": 2, "failed": 1, "cancelled": 1}
    assert sum(day["created"] for day in body["jobs_per_day"]) == 5
    totals = body["totals"]
    assert totals["jobs"] == 5 and totals["ended"] == 3 and totals["cancelled"] == 1
    assert totals["by_status"] == {"cancelled": 1, "completed": 2, "failed": 1, "queued": 1}
    assert body["success_rate"] == round(100 * 2 / 3, 2)
    wait = body["queue_wait"]
    assert wait["count"] == 3 and wait["mean_s"] == 20.0 and wait["median_s"] == 20.0 and wait["max_s"] == 30.0
    assert body["compute"] == {"cpu_hours": 1.1, "gpu_hours": 0.5, "total_hours": 1.6}
    assert body["popular_models"][0] == {"model": "model-a", "jobs": 3, "completed": 2}
    assert {m["model"]: m["jobs"] for m in body["popular_models"]} == {"model-a": 3, "model-b": 1, "model-c": 1}
    assert body["popular_datasets"] == [
        {"dataset": data, "jobs": 3, "completed": 2}, {"dataset": other, "jobs": 2, "completed": 0}
    ]
    hyper = {h["name"]: h for h in body["hyperparameters"]}
    assert hyper["learning_rate"]["jobs"] == 4
    assert hyper["learning_rate"]["values"] == [{"value": "0.0002", "count": 3}, {"value": "0.0001", "count": 1}]
    assert hyper["lora.r"]["values"] == [{"value": "16", "count": 2}, {"value": "8", "count": 1}]
    assert body["hyperparameters"][0]["name"] == "learning_rate"  # the most often set comes first
    assert hyper["lora.r"]["jobs"] == 3  # the guide's lora_r, as TrainConfig stores it


def test_analytics_of_an_empty_studio_and_bad_windows(client: TestClient) -> None:
    body = client.get("/api/analytics").json()
    assert body["days"] == 30 and body["totals"]["jobs"] == 0 and body["success_rate"] is None
    assert body["queue_wait"]["count"] == 0 and body["compute"]["total_hours"] == 0
    assert all(day["created"] == 0 for day in body["jobs_per_day"])
    for days in ("0", "-1", "abc", "4000"):
        assert_error(client.get("/api/analytics", params={"days": days}), 422, "invalid_input")
