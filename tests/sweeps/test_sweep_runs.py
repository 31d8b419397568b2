"""Sweeps with real workers and the engine on the tiny model (the issue's acceptance), SQLite and PostgreSQL.

A "server" here is what ``tunelab serve`` runs: one sweep driver thread and one
worker thread on the store. Restarting it means stopping both (the worker
checkpoints its running trial and gives it back to the queue, as on Ctrl-C)
and starting new ones on the same database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests.sweeps.conftest import FAST

from tunelab.jobs.configurations import get_configuration
from tunelab.jobs.service import get_job, list_events, list_metrics
from tunelab.store.models import Job, SweepTrial
from tunelab.sweeps import service, study


class Server:
    """A sweep driver and a worker running in threads, like ``tunelab serve``."""

    def __init__(self, factory: sessionmaker[Session], make_driver: Callable, make_worker: Callable) -> None:  # type: ignore[type-arg]
        self.driver, self.worker = make_driver(factory), make_worker(factory)
        self.threads = [threading.Thread(target=self.driver.run_forever, daemon=True),
                        threading.Thread(target=self.worker.run_forever, daemon=True)]  # fmt: skip
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.driver.stop()
        self.worker.stop()
        for thread in self.threads:
            thread.join(timeout=120)


def _wait(factory: sessionmaker[Session], check: Callable[[Session], bool], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with factory() as session:
            if check(session):
                return
        time.sleep(0.3)
    raise AssertionError("timed out")


def _rows(session: Session, sweep_id: str) -> list[SweepTrial]:
    return service.list_trials(session, sweep_id)


def _mid_trial(session: Session, sweep_id: str) -> bool:
    """Two trials done and the next one's engine held in step 5 (checkpoint-4 already written)."""
    rows = _rows(session, sweep_id)
    done = sum(1 for row in rows if row.state == "complete")
    running = [session.get(Job, row.job_id) for row in rows if row.state == "running" and row.job_id]
    return done >= 2 and any(job.status == "running" and job.run_dir and (Path(job.run_dir) / "hook-step-5").exists()
                             for job in running)  # fmt: skip


@pytest.mark.slow
def test_six_trial_tpe_sweep_survives_a_restart_and_its_best_trains(
    factory, sweep_request: Callable[..., dict[str, Any]], make_driver, make_worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every trial's step 5 takes 5 s longer, so the restart lands mid-trial however fast the machine trains.
    monkeypatch.setenv("TUNELAB_TEST_HOOKS", "step@5=5")
    with factory() as session:
        sweep_id = service.create_sweep(session, sweep_request(sampler="tpe", n_trials=6)).id
    first = Server(factory, make_driver, make_worker)
    _wait(factory, lambda s: _mid_trial(s, sweep_id))
    first.stop()  # the restart: the running trial is checkpointed and requeued
    with factory() as session:
        assert service.get_sweep(session, sweep_id).status == "running"
        interrupted = [row.job_id for row in _rows(session, sweep_id) if row.state == "running"]
        assert interrupted and get_job(session, interrupted[0]).status == "queued"
    second = Server(factory, make_driver, make_worker)
    try:
        _wait(factory, lambda s: service.get_sweep(s, sweep_id).status != "running")
    finally:
        second.stop()
    with factory() as session:
        sweep = service.get_sweep(session, sweep_id)
        rows = _rows(session, sweep_id)
        assert sweep.status == "completed"
        # exactly six trials, each one job, none run twice
        assert [row.number for row in rows] == list(range(6))
        assert len(study.load(service.database_url(session), sweep).trials) == 6
        jobs = [job for job in session.scalars(select(Job)) if f"sweep:{sweep_id}" in (job.tags or [])]
        assert sorted(job.id for job in jobs) == sorted(row.job_id for row in rows)
        for row in rows:
            job = get_job(session, row.job_id)
            assert job.status == "completed" and row.state == "complete" and job.global_step == FAST["max_steps"]
            statuses = [e.data["status"] for e in list_events(session, job.id, limit=10_000) if e.type == "status"]
            assert statuses.count("completed") == 1
            assert [m.step for m in list_metrics(session, job.id)] == list(range(1, FAST["max_steps"] + 1))  # no step twice
        resumed = [e.data for e in list_events(session, interrupted[0], limit=10_000) if e.type == "status"]
        assert [s["status"] for s in resumed].count("running") == 2  # it continued on the second server
        # the reported best is the lowest objective, saved as a configuration, and it trains
        values = {row.number: row.value for row in rows}
        assert sweep.best_value == min(values.values()) and values[sweep.best_trial] == sweep.best_value
        saved = get_configuration(session, sweep.best_configuration_id)
        assert saved.eval_loss == sweep.best_value
        best_job = service.train_best(session, sweep_id).id
    make_worker(factory).run_once()
    with factory() as session:
        job = get_job(session, best_job)
        assert job.status == "completed" and job.configuration_id == saved.id
        assert job.config["hyperparameters"]["learning_rate"] == rows[sweep.best_trial].params["learning_rate"]


@pytest.mark.slow
def test_the_pruner_stops_a_poor_trial_early(factory, sweep_request: Callable[..., dict[str, Any]],
                                             make_driver, make_worker, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # Step 12 of every trial takes 10 s longer: the pruner's cancel lands before step 30 however fast the machine.
    monkeypatch.setenv("TUNELAB_TEST_HOOKS", "step@12=10")
    # Grid seed 1 runs lr 1e-2 first, then 2e-6 and 1e-6: the median pruner cuts the slow learners.
    hyper = {**sweep_request()["hyperparameters"], "max_steps": 30, "save_steps": 0}
    body = sweep_request(sampler="grid", seed=1, search={"learning_rate": {"choices": [1e-2, 2e-6, 1e-6]}},
                         n_trials=None, hyperparameters=hyper, pruner={"type": "median", "n_startup_trials": 1})  # fmt: skip
    with factory() as session:
        sweep_id = service.create_sweep(session, body).id
    server = Server(factory, make_driver, make_worker)
    try:
        _wait(factory, lambda s: service.get_sweep(s, sweep_id).status != "running")
    finally:
        server.stop()
    with factory() as session:
        rows = _rows(session, sweep_id)
        assert rows[0].params["learning_rate"] == 1e-2 and rows[0].state == "complete"
        pruned = [row for row in rows if row.state == "pruned"]
        assert pruned, [(row.state, row.intermediate) for row in rows]
        for row in pruned:
            job = get_job(session, row.job_id)
            assert job.status == "cancelled" and (job.global_step or 0) < 30  # stopped early
            assert any(e.data.get("type") == "pruned" for e in list_events(session, job.id, limit=10_000))
        assert service.get_sweep(session, sweep_id).status == "completed"
