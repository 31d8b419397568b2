"""What an engine's end means for its job: crashes requeue within max_attempts, disk_full pauses,
a clean exit nobody saw costs no attempt (fast: a real store, no engine)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from tunelab.jobs import service
from tunelab.jobs.events import set_status
from tunelab.jobs.outcome import decide_outcome, finish
from tunelab.jobs.queue import handle_lost_job
from tunelab.jobs.states import JobStatus
from tunelab.store.models import Job


def _running(factory: sessionmaker[Session], tmp_path: Path, *, attempts: int = 1, max_attempts: int = 3) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"text": "hello"}) + "\n")
    with factory() as session:
        job = service.create_job(session, {"model": "tiny", "dataset": str(data), "hyperparameters": {}},
                                 max_attempts=max_attempts)  # fmt: skip
        set_status(session, job, JobStatus.RUNNING)
        job.attempts, job.run_dir = attempts, str(tmp_path / "run")
        (tmp_path / "run").mkdir()
        session.commit()
        return job.id


def _finish(factory: sessionmaker[Session], job_id: str, rc: int, action: str | None, run: Path) -> Job:
    with factory() as session:
        job = session.get(Job, job_id)
        finish(session, job, decide_outcome(rc, action, run), run)
        session.commit()
        return job


def test_sigkill_requeues_with_one_more_attempt_then_fails_when_none_are_left(factory, tmp_path: Path) -> None:
    job_id = _running(factory, tmp_path, attempts=2, max_attempts=3)
    job = _finish(factory, job_id, -9, None, tmp_path / "run")
    assert (job.status, job.attempts, job.error) == ("queued", 3, None)
    with factory() as session:
        crash = [e.data for e in service.list_events(session, job_id, types=["event"])][-1]
        set_status(session, session.get(Job, job_id), JobStatus.RUNNING)
        session.commit()
    assert crash["type"] == "engine_crashed"
    assert crash["message"] == ("the training process was killed by SIGKILL; queued again (attempt 3 of 3) "
                                "to resume from the newest valid checkpoint")  # fmt: skip
    job = _finish(factory, job_id, -9, None, tmp_path / "run")
    assert job.status == "failed" and job.error["code"] == "engine_crashed"
    assert "(attempt 3 of 3, none left)" in job.error["message"] and job.error["hint"]


def test_a_pause_the_engine_never_finished_still_pauses(factory, tmp_path: Path) -> None:
    job_id = _running(factory, tmp_path)
    job = _finish(factory, job_id, -9, "pause", tmp_path / "run")
    assert (job.status, job.attempts) == ("paused", 1)


def test_disk_full_pauses_with_the_error(factory, tmp_path: Path) -> None:
    job_id = _running(factory, tmp_path)
    failure = {"code": "disk_full", "message": "Not enough disk space for checkpoint-4", "hint": "free 3 MB at /x"}
    with factory() as session:
        job = session.get(Job, job_id)
        job.tail_state = {"failure": failure, "stopping": {"action": "pause"}}
        session.commit()
    job = _finish(factory, job_id, 1, None, tmp_path / "run")
    assert job.status == "paused" and job.error == failure
    assert job.to_dict()["stopping"] is None


def test_a_lost_job_whose_engine_exited_cleanly_costs_no_attempt(factory, tmp_path: Path) -> None:
    clean, crashed = _running(factory, tmp_path / "a"), _running(factory, tmp_path / "b")
    (tmp_path / "a" / "run" / "exit.json").write_text(json.dumps({"exit_code": 75, "step": 6}))
    (tmp_path / "b" / "run" / "exit.json").write_text(json.dumps({"exit_code": -9}))
    with factory() as session:
        assert handle_lost_job(session, session.get(Job, clean), "worker gone") == "queued"
        assert handle_lost_job(session, session.get(Job, crashed), "worker gone") == "queued"
        session.commit()
        assert session.get(Job, clean).attempts == 1
        assert session.get(Job, crashed).attempts == 2
        last = service.list_events(session, clean, types=["status"])[-1].data
    assert last["clean_exit"] is True and "stopped cleanly at step 6" in last["reason"]
