"""Each sampler and pruner of ``sweeps.study`` drives real trial jobs on the store.

Like ``test_driver.py``, job ends are written the way the worker writes them
(``set_status`` and metric rows), so every sampler and pruner runs through the
driver in seconds; the objective is a fixed function of the trial's learning
rate, so "the best has the lowest objective" is checked against every trial.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tunelab.jobs.events import set_status
from tunelab.jobs.service import get_job
from tunelab.store.models import Job, Metric, SweepTrial
from tunelab.sweeps import service, study


def _trials(factory: sessionmaker[Session], sweep_id: str) -> list[SweepTrial]:
    with factory() as session:
        return service.list_trials(session, sweep_id)


def _log(factory: sessionmaker[Session], job_id: str, evals: dict[int, float], status: str) -> None:
    """The worker's writes: the job running, eval losses at the given steps, then ``status``."""
    with factory() as session:
        job = get_job(session, job_id)
        if job.status != "running":
            set_status(session, job, "running")
        for step, value in evals.items():
            session.add(Metric(job_id=job_id, step=step, loss=value + 0.1, eval_loss=value))
        if status != "running":
            set_status(session, job, status)
        session.commit()


def _objective(params: dict[str, Any]) -> float:
    """Lowest at a learning rate of 1e-3."""
    return 1.0 + (math.log10(params["learning_rate"]) + 3) ** 2


@pytest.mark.parametrize("sampler", ["random", "gp"])
def test_a_sweep_with_each_sampler_runs_its_trials_as_jobs(factory, sweep_request, make_driver, sampler: str) -> None:
    with factory() as session:
        sweep_id = service.create_sweep(session, sweep_request(sampler=sampler, n_trials=5, parallel=1)).id
    driver = make_driver(factory)
    for _ in range(12):  # one trial at a time: queued, then ended with its objective
        driver.tick()
        for trial in _trials(factory, sweep_id):
            if trial.state == "running":
                _log(factory, trial.job_id, {2: 5.0, 4: _objective(trial.params)}, "completed")
        with factory() as session:
            if service.get_sweep(session, sweep_id).status != "running":
                break
    trials = _trials(factory, sweep_id)
    with factory() as session:
        sweep = service.get_sweep(session, sweep_id)
        assert sweep.status == "completed" and [t.number for t in trials] == list(range(5))
        jobs = [j for j in session.scalars(select(Job)) if f"sweep:{sweep_id}" in (j.tags or [])]
        assert sorted(j.id for j in jobs) == sorted(t.job_id for t in trials)  # every trial is one job
        for trial in trials:
            job = get_job(session, trial.job_id)
            assert job.config["hyperparameters"]["learning_rate"] == trial.params["learning_rate"]
            assert trial.state == "complete" and trial.value == pytest.approx(_objective(trial.params))
        assert sweep.best_value == min(t.value for t in trials)
        assert trials[sweep.best_trial].value == sweep.best_value
        loaded = study.load(service.database_url(session), sweep)
        assert type(loaded.sampler).__name__ == {"random": "RandomSampler", "gp": "GPSampler"}[sampler]
        assert len(loaded.trials) == 5
    assert len({t.params["learning_rate"] for t in trials}) == 5  # five different points were tried


@pytest.mark.parametrize(("pruner", "good_trials"), [
    ({"type": "successive_halving", "min_resource": 1, "reduction_factor": 3}, 1),
    # one Hyperband bracket (log_3(max 4 / min 2) < 1), so the trials always compete; its
    # maximum resource is read from the first completed trial, so two good trials go first
    ({"type": "hyperband", "min_resource": 2, "reduction_factor": 3}, 2),
])  # fmt: skip
def test_each_pruner_cancels_a_poor_trial_from_its_eval_losses(factory, sweep_request, make_driver,
                                                               pruner: dict[str, Any], good_trials: int) -> None:  # fmt: skip
    with factory() as session:
        body = sweep_request(n_trials=good_trials + 1, parallel=1, pruner=pruner)
        sweep_id = service.create_sweep(session, body).id
    driver = make_driver(factory)
    for number in range(good_trials):  # good trials report while running (the pruner ranks them), then end
        driver.tick()
        job_id = _trials(factory, sweep_id)[number].job_id
        _log(factory, job_id, {2: 1.0 + number}, "running")
        driver.tick()
        assert _trials(factory, sweep_id)[number].state == "running"  # a good trial is not pruned
        _log(factory, job_id, {4: 0.5 + number}, "completed")
    driver.tick()  # the last good trial completes; the poor one is queued
    poor = _trials(factory, sweep_id)[good_trials]
    _log(factory, poor.job_id, {2: 9.0}, "running")
    driver.tick()
    poor = _trials(factory, sweep_id)[good_trials]
    assert poor.state == "pruned" and poor.value == 9.0 and "pruned at step 2" in poor.message
    with factory() as session:
        job = get_job(session, poor.job_id)
        assert job.requested_action == "cancel"
        set_status(session, job, "cancelled")  # what the worker does on the cancel
        session.commit()
    driver.tick()
    trials = _trials(factory, sweep_id)
    assert [t.state for t in trials] == ["complete"] * good_trials + ["pruned"]
    with factory() as session:
        sweep = service.get_sweep(session, sweep_id)
        assert sweep.status == "completed" and sweep.best_trial == 0 and sweep.best_value == 0.5
        assert type(study.load(service.database_url(session), sweep).pruner).__name__ == {
            "successive_halving": "SuccessiveHalvingPruner", "hyperband": "HyperbandPruner"}[pruner["type"]]  # fmt: skip
