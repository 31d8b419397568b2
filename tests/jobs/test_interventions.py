"""Interventions through the service and a real worker: recorded only for running jobs, relayed
into the engine's control file, answered by the engine's events; stop early completes the job."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from tests.jobs.helpers import wait_for_job
from tests.jobs.test_worker import _create

from tunelab.errors import TunelabError
from tunelab.jobs import service
from tunelab.jobs.states import INTERVENTIONS, JobStatus
from tunelab.store.models import Job

CALLS = {
    "checkpoint": lambda session, job_id: service.checkpoint_job(session, job_id),
    "learning_rate": lambda session, job_id: service.set_learning_rate(session, job_id, 1e-4),
    "stop_early": lambda session, job_id: service.stop_early_job(session, job_id),
}
CASES = list(itertools.product(sorted(INTERVENTIONS), [s.value for s in JobStatus]))


@pytest.mark.parametrize(("action", "status"), CASES)
def test_intervention_table_matches_the_service(session: Session, make_config, action: str, status: str) -> None:
    job = service.create_job(session, make_config(), submit=False)
    job.status = status  # put it there directly: this test is about the table, not the path
    session.commit()
    if JobStatus(status) in INTERVENTIONS[action]:
        _, event = CALLS[action](session, job.id)
        assert event.data["action"] == action
    else:
        with pytest.raises(TunelabError) as info:
            CALLS[action](session, job.id)
        assert info.value.code == "illegal_transition"
        assert info.value.details["allowed"] == ["running"]


def test_requests_are_listed_for_the_current_attempt_only(session: Session, make_config) -> None:
    job = service.create_job(session, make_config(), submit=False)
    job.status = "running"
    session.commit()
    service.checkpoint_job(session, job.id)  # an earlier attempt's request
    service.add_event(session, job.id, "status", {"status": "running", "previous": "queued"})  # a new claim
    session.commit()
    cursor = service.intervention_cursor(session, job.id)
    service.set_learning_rate(session, job.id, 2e-4)
    service.add_event(session, job.id, "event", {"type": "eval", "message": "noise"})
    session.commit()
    service.stop_early_job(session, job.id)
    pending = service.pending_interventions(session, job.id, cursor)
    assert [(action, value) for _, action, value in pending] == [("learning_rate", 2e-4), ("stop_early", None)]
    assert pending[0][0] < pending[1][0]


def test_bad_learning_rates_and_pending_stops_are_refused(session: Session, make_config) -> None:
    job = service.create_job(session, make_config(), submit=False)
    job.status = "running"
    session.commit()
    for bad in (0.0, 1.0, -1e-4, float("nan"), True):
        with pytest.raises(TunelabError) as info:
            service.set_learning_rate(session, job.id, bad)  # type: ignore[arg-type]
        assert info.value.code == "invalid_input"
    service.pause_job(session, job.id)
    with pytest.raises(TunelabError) as info:
        service.checkpoint_job(session, job.id)
    assert info.value.code == "conflict"


@pytest.mark.slow
def test_a_running_job_takes_a_new_rate_a_checkpoint_and_stops_early(
    sqlite_factory, worker, make_config, tiny_model_dir
) -> None:
    job_id = _create(sqlite_factory, make_config, tiny_model_dir,
                     hyper={"max_steps": 400, "save_steps": 0, "scheduler": "constant", "learning_rate": 5e-3,
                            "warmup_ratio": 0.0})
    thread = threading.Thread(target=worker.run_once)
    thread.start()

    def engine_said(kind: str) -> Callable[[Job], bool]:
        def check(job: Job) -> bool:
            with sqlite_factory() as session:
                return any(e.data.get("type") == kind
                           for e in service.list_events(session, job.id, types=["event"], limit=10_000))
        return check

    wait_for_job(sqlite_factory, job_id, lambda j: (j.global_step or 0) >= 2)
    with sqlite_factory() as session:
        _, lr_request = service.set_learning_rate(session, job_id, 1e-4)
        _, ck_request = service.checkpoint_job(session, job_id)
    wait_for_job(sqlite_factory, job_id, engine_said("learning_rate_changed"))
    wait_for_job(sqlite_factory, job_id, engine_said("checkpoint_saved"))
    with sqlite_factory() as session:
        _, stop_request = service.stop_early_job(session, job_id)
    thread.join(timeout=180)
    assert not thread.is_alive()
    with sqlite_factory() as session:
        job = service.get_job(session, job_id)
        assert job.status == "completed" and job.progress == 1.0 and job.global_step < 400
        answers = {e.data["type"]: e.data["data"] for e in service.list_events(session, job_id, types=["event"],
                                                                              limit=10_000)
                   if e.data.get("type") in ("learning_rate_changed", "checkpoint_saved", "stopped_early")}
        assert answers["learning_rate_changed"]["request_id"] == lr_request.id
        assert answers["learning_rate_changed"]["to"] == 1e-4
        assert answers["checkpoint_saved"]["requested"] is True
        assert answers["stopped_early"]["request_id"] == stop_request.id
        assert answers["stopped_early"]["step"] == job.global_step
        changed_at = answers["learning_rate_changed"]["step"]
        rates = {m.step: m.learning_rate for m in service.list_metrics(session, job_id)}
        assert rates[changed_at - 1] == pytest.approx(5e-3) and rates[job.global_step] == pytest.approx(1e-4)
        assert [c.step for c in service.list_checkpoints(session, job_id)] == [answers["checkpoint_saved"]["step"]]
        assert any(a.path == "output/adapter_model.safetensors" for a in service.list_artifacts(session, job_id))
        assert ck_request.id < stop_request.id
    assert not (Path(job.run_dir) / "control").exists()
