"""Pausing and resuming a trial's job inside a running sweep, with real workers and the engine.

The trial's engine is held in step 3 by the test hooks (``TUNELAB_TEST_HOOKS``),
so the pause lands mid-trial however fast or slow the machine trains.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from tests.sweeps.conftest import FAST
from tests.sweeps.test_sweep_runs import Server, _wait

from tunelab.jobs import service as jobs
from tunelab.jobs.service import get_job, list_events, list_metrics
from tunelab.store.models import Job
from tunelab.sweeps import service, study


def _held(session: Session, sweep_id: str) -> str | None:
    """The first trial's job id once its engine is held in step 3."""
    rows = service.list_trials(session, sweep_id)
    job = session.get(Job, rows[0].job_id) if rows and rows[0].job_id else None
    if job is not None and job.status == "running" and job.run_dir and (Path(job.run_dir) / "hook-step-3").exists():
        return job.id
    return None


@pytest.mark.slow
def test_a_paused_trial_resumes_and_the_sweep_keeps_its_trial_count(
    factory: sessionmaker[Session], sweep_request: Callable[..., dict[str, Any]], make_driver: Callable,  # type: ignore[type-arg]
    make_worker: Callable, monkeypatch: pytest.MonkeyPatch,  # type: ignore[type-arg]
) -> None:
    monkeypatch.setenv("TUNELAB_TEST_HOOKS", "step@3=15")  # once per run directory: the resumed run goes on
    with factory() as session:
        sweep_id = service.create_sweep(session, sweep_request(sampler="random", n_trials=2, parallel=1)).id
    server = Server(factory, make_driver, make_worker)
    try:
        _wait(factory, lambda s: _held(s, sweep_id) is not None)
        with factory() as session:
            job_id = _held(session, sweep_id)
        assert job_id is not None
        with factory() as session:  # a fresh session: the pause takes SQLite's write lock at BEGIN
            jobs.pause_job(session, job_id)
        _wait(factory, lambda s: get_job(s, job_id).status in ("paused", "failed", "completed"))
        time.sleep(2)  # the driver ticks every 0.2 s meanwhile: a paused trial is not finished, nor replaced
        with factory() as session:
            assert get_job(session, job_id).status == "paused"
            sweep = service.get_sweep(session, sweep_id)
            rows = service.list_trials(session, sweep_id)
            assert sweep.status == "running" and [(r.number, r.state) for r in rows] == [(0, "running")]
            assert len(study.load(service.database_url(session), sweep).trials) == 1
        with factory() as session:  # not after the reads above: a deferred read cannot become a writer
            jobs.resume_job(session, job_id)  # once the worker has committed since (database is locked)
        _wait(factory, lambda s: service.get_sweep(s, sweep_id).status != "running")
    finally:
        server.stop()
    with factory() as session:
        sweep = service.get_sweep(session, sweep_id)
        rows = service.list_trials(session, sweep_id)
        assert sweep.status == "completed" and [(r.number, r.state) for r in rows] == [(0, "complete"), (1, "complete")]
        assert len(study.load(service.database_url(session), sweep).trials) == 2
        job = get_job(session, job_id)
        assert job.status == "completed" and job.global_step == FAST["max_steps"]
        statuses = [e.data["status"] for e in list_events(session, job_id, limit=10_000) if e.type == "status"]
        assert "paused" in statuses and statuses.count("completed") == 1
        assert [m.step for m in list_metrics(session, job_id)] == list(range(1, FAST["max_steps"] + 1))
        assert rows[0].value is not None and rows[0].intermediate  # its eval losses before and after the pause
