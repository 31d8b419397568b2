"""The training monitor routes: status, summary, losses, resources, /ws/training with a cursor, /health."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from tests.api.conftest import assert_error


def _log_steps(sessions: Any, job_id: str) -> None:
    """What the worker's tailer stores for a 3-step run with one eval and one resource sample."""
    from tunelab.jobs.events import add_event
    from tunelab.jobs.service import get_job
    from tunelab.jobs.tailer import upsert_metric

    with sessions() as session:
        job = get_job(session, job_id)
        job.tail_state = {"total_steps": 3}
        add_event(session, job_id, "event", {"type": "started", "data": {"total_steps": 3, "hardware": {"device": "cpu"}}})
        add_event(session, job_id, "resources", {"cpu_percent": 12.5, "gpus": []})
        for step, loss in ((1, 2.0), (2, 1.5), (3, 1.2)):
            line = {"type": "train", "step": step, "epoch": step / 3, "loss": loss, "learning_rate": 1e-4,
                    "grad_norm": 0.5, "eta_s": 3.0 - step, "tokens_per_second": 100.0}  # fmt: skip
            upsert_metric(session, job_id, line)
            add_event(session, job_id, "metrics", line)
            if step == 2:
                upsert_metric(session, job_id, {"type": "eval", "step": 2, "eval_loss": 1.7})
                add_event(session, job_id, "metrics", {"type": "eval", "step": 2, "eval_loss": 1.7})
        job.global_step, job.progress = 3, 1.0
        session.commit()


def test_status_summary_losses(client: TestClient, make_job: Callable[[str], str], sessions: Any) -> None:
    running, queued, _ = make_job("running"), make_job("queued"), make_job("completed")
    _log_steps(sessions, running)
    status = client.get(f"/api/training/status/{running}").json()
    assert status["jobUid"] == running and status["status"] == "running"
    assert (status["iteration"], status["total"], status["progress"]) == (3, 3, 1.0)
    assert status["train_loss"] == 1.2 and status["validation_loss"] == 1.7 and status["eta_s"] == 0.0
    summary = client.get("/api/training/summary").json()
    assert summary["counts"]["running"] == 1 and summary["counts"]["queued"] == 1
    assert summary["counts"]["completed"] == 1 and summary["counts"]["failed"] == 0 and summary["total"] == 3
    assert [r["job_id"] for r in summary["running"]] == [running]
    assert summary["running"][0]["tokens_per_second"] == 100.0
    assert summary["queue"]["waiting"] == 1 and summary["queue"]["oldest_wait_s"] >= 0
    assert summary["queue"]["average_wait_s"] >= 0 and summary["queue"]["sampled_jobs"] == 2
    losses = client.get("/api/training/losses", params={"last_n": 2}).json()  # the running job by default
    assert losses["job_id"] == running and [p["step"] for p in losses["data"]] == [2, 3]
    assert losses["train_losses"] == [1.5, 1.2] and losses["validation_losses"] == [1.7]
    assert client.get("/api/training/losses", params={"job_id": queued}).json()["count"] == 0
    resources = client.get("/api/training/resources/current").json()
    assert resources["ram_total"] > 0 and isinstance(resources["gpus"], list)
    assert client.get("/health").json()["status"] == "ok" == client.get("/api/health").json()["status"]


def test_bad_input_answers_4xx(client: TestClient) -> None:
    assert_error(client.get("/api/training/status/job-nope"), 404, "not_found")
    assert_error(client.get("/api/training/losses", params={"job_id": "job-nope"}), 404, "not_found")
    assert_error(client.get("/api/training/losses"), 404, "not_found")  # nothing has trained yet
    assert_error(client.get("/api/training/losses", params={"last_n": "many"}), 422, "invalid_input")
    assert_error(client.get("/api/training/losses", params={"last_n": 0}), 422, "invalid_input")
    with client.websocket_connect("/ws/training/job-nope") as ws:
        assert ws.receive_json()["error"]["code"] == "not_found"
    with client.websocket_connect("/ws/training/job-nope?after=-1") as ws:
        assert ws.receive_json()["type"] == "error"


def test_websocket_sends_steps_and_resumes_from_a_cursor(
    client: TestClient, make_job: Callable[[str], str], sessions: Any
) -> None:
    from tunelab.jobs.events import set_status
    from tunelab.jobs.service import get_job

    job_id = make_job("running")
    _log_steps(sessions, job_id)
    with sessions() as session:
        set_status(session, get_job(session, job_id), "completed")
        session.commit()
    with client.websocket_connect(f"/ws/training/{job_id}") as ws:
        messages = []
        while not messages or messages[-1]["type"] != "end":
            messages.append(ws.receive_json())
    assert [m["type"] for m in messages] == ["status"] * 3 + ["training"] * 3 + ["status", "end"]
    assert [m["status"] for m in messages if m["type"] == "status"] == ["created", "queued", "running", "completed"]
    steps = [m for m in messages if m["type"] == "training"]
    assert [(m["iteration"], m["total"], m["progress"]) for m in steps] == [(1, 3, 0.3333), (2, 3, 0.6667), (3, 3, 1.0)]
    assert [m["training"]["validation_loss"] for m in steps] == [None, None, 1.7]
    assert steps[0]["training"] == {"train_loss": 2.0, "validation_loss": None, "epoch": 1 / 3,
                                    "learning_rate": 1e-4, "grad_norm": 0.5}  # fmt: skip
    assert steps[0]["resources"] == {"cpu_percent": 12.5, "gpus": []} and steps[0]["eta_s"] == 2.0
    with client.websocket_connect(f"/ws/training/{job_id}?after={steps[1]['id']}") as ws:
        resumed = [ws.receive_json() for _ in range(3)]
    assert resumed[0] == steps[2]  # the same message, with state caught up from before the cursor
    assert [m["type"] for m in resumed[1:]] == ["status", "end"]


def test_openapi_documents_the_monitor(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/training/status/{job_id}", "/api/training/summary", "/api/training/losses",
                 "/api/training/resources/current", "/health"):  # fmt: skip
        assert path in paths, path
