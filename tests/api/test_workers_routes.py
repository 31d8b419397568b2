"""GET /api/workers and a job's wait_reason through the API."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tunelab.jobs.resources import GIB, Resources, advertise, report_waiting
from tunelab.jobs.service import create_job


def test_workers_and_a_job_waiting_for_resources(
    client: TestClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    assert client.get("/api/workers").json() == {"data": [], "count": 0}
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"instruction": "Say hi.", "input": "", "output": "hi"}) + "\n")
    with sessions() as session:  # a job that asks for a GPU (`hyperparameters.device: cuda`)
        job_id = create_job(session, {"model": "tiny", "dataset": str(data),
                                      "hyperparameters": {"device": "cuda"}}).id  # fmt: skip
    assert client.get(f"/api/jobs/{job_id}").json()["wait_reason"] is None
    with sessions() as session:
        advertise(session, "box:1", Resources(cpu_count=8, ram_total=32 * GIB), None)
        report_waiting(session, stale_s=60)
    shown = client.get(f"/api/jobs/{job_id}").json()
    assert shown["status"] == "queued"
    assert shown["wait_reason"] == "waiting for resources: needs 1 GPU; workers have none"
    (worker,) = client.get("/api/workers").json()["data"]
    assert (
        worker["id"] == "box:1" and worker["alive"] and worker["resources"] == "8 CPUs, 32.0 GB RAM"
    )
    assert worker["jobs"] == [] and worker["gpus"] == []
