"""The sweep driver on the store, without training: trials become jobs, job ends become Optuna results.

Job ends are written the way the worker writes them (``set_status`` and metric
rows), so these run in seconds; ``test_sweep_runs.py`` runs the same with real
workers and the engine.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests.sweeps.conftest import FAST

from tunelab.errors import Conflict, NotFound
from tunelab.jobs.configurations import configuration_mode, get_configuration
from tunelab.jobs.events import set_status
from tunelab.jobs.service import get_job
from tunelab.store.models import Job, Metric, Sweep, SweepTrial, utcnow
from tunelab.sweeps import service, study


def _trials(factory: sessionmaker[Session], sweep_id: str) -> list[SweepTrial]:
    with factory() as session:
        return service.list_trials(session, sweep_id)


def _end(factory: sessionmaker[Session], job_id: str, losses: list[float], status: str = "completed") -> None:
    """What a worker leaves behind: running, eval losses every 2 steps, then the end status."""
    with factory() as session:
        job = get_job(session, job_id)
        set_status(session, job, "running")
        for index, value in enumerate(losses, start=1):
            session.add(Metric(job_id=job_id, step=2 * index, loss=value + 0.1, eval_loss=value))
        if status != "running":
            set_status(session, job, status, error={"code": "boom", "message": "it broke"} if status == "failed" else None)
        session.commit()


def _optuna_count(factory: sessionmaker[Session], sweep_id: str) -> int:
    with factory() as session:
        sweep = service.get_sweep(session, sweep_id)
        return len(study.load(service.database_url(session), sweep).trials)


def _create(factory: sessionmaker[Session], body: dict[str, Any]) -> str:
    with factory() as session:
        return service.create_sweep(session, body).id


def test_trials_are_queued_jobs_up_to_parallel(factory, sweep_request, make_driver) -> None:
    sweep_id = _create(factory, sweep_request(n_trials=3, parallel=2))
    driver = make_driver(factory)
    assert driver.tick() == 1
    driver.tick()
    trials = _trials(factory, sweep_id)
    assert [t.number for t in trials] == [0, 1] and all(t.state == "running" for t in trials)
    with factory() as session:
        for trial in trials:
            job = get_job(session, trial.job_id)
            assert job.status == "queued" and job.name == f"numbers #{trial.number}"
            assert {"sweep", f"sweep:{sweep_id}", f"trial:{trial.number}"} <= set(job.tags)
            hyper = job.config["hyperparameters"]
            assert hyper["learning_rate"] == trial.params["learning_rate"]
            assert hyper["lora"] == {"r": trial.params["lora.r"]} and hyper["max_steps"] == FAST["max_steps"]
            assert 1e-4 <= trial.params["learning_rate"] <= 1e-2 and trial.params["lora.r"] in (4, 8)
            assert job.save_options == {"save_model": False}
            assert configuration_mode(job.configuration_id) == "automated"
    assert _optuna_count(factory, sweep_id) == 2


def test_finished_jobs_rank_the_trials_and_the_best_is_saved_and_trains(factory, sweep_request, make_driver) -> None:
    sweep_id = _create(factory, sweep_request(n_trials=3, parallel=3))
    driver = make_driver(factory)
    driver.tick()
    trials = _trials(factory, sweep_id)
    for trial, final in zip(trials, [2.5, 1.25, 3.0], strict=True):
        _end(factory, trial.job_id, [4.0, final])
    driver.tick()
    trials = _trials(factory, sweep_id)
    assert [(t.state, t.value) for t in trials] == [("complete", 2.5), ("complete", 1.25), ("complete", 3.0)]
    assert trials[1].intermediate == [[2, 4.0], [4, 1.25]]
    with factory() as session:
        sweep = service.get_sweep(session, sweep_id)
        assert sweep.status == "completed" and sweep.best_trial == 1 and sweep.best_value == 1.25
        best = service.best_dict(session, sweep_id)
        assert best["trial"]["number"] == 1
        saved = get_configuration(session, sweep.best_configuration_id)
        assert saved.eval_loss == 1.25 and configuration_mode(saved.id) == "automated"
        assert saved.hyperparameters["learning_rate"] == trials[1].params["learning_rate"]
        assert service.best_dict(session, sweep_id)["configuration"]["id"] == saved.id  # a stable id
        job = service.train_best(session, sweep_id)
        assert job.status == "queued" and job.configuration_id == saved.id
        assert job.config["hyperparameters"]["lora"] == {"r": trials[1].params["lora.r"]}
        assert "importances" in service.importances(session, sweep_id)
    assert _optuna_count(factory, sweep_id) == 3
    assert driver.tick() == 0  # a finished sweep is left alone


def test_maximising_picks_the_highest(factory, sweep_request, make_driver) -> None:
    sweep_id = _create(factory, sweep_request(n_trials=2, parallel=2, direction="maximize"))
    driver = make_driver(factory)
    driver.tick()
    for trial, final in zip(_trials(factory, sweep_id), [1.0, 2.0], strict=True):
        _end(factory, trial.job_id, [final])
    driver.tick()
    with factory() as session:
        assert service.best_trial(session, sweep_id).number == 1


def test_failed_and_cancelled_jobs_fail_their_trials(factory, sweep_request, make_driver) -> None:
    sweep_id = _create(factory, sweep_request(n_trials=2, parallel=2))
    driver = make_driver(factory)
    driver.tick()
    first, second = _trials(factory, sweep_id)
    _end(factory, first.job_id, [3.0], status="failed")
    _end(factory, second.job_id, [3.0], status="cancelled")
    driver.tick()
    first, second = _trials(factory, sweep_id)
    assert (first.state, first.message) == ("fail", "it broke")
    assert (second.state, second.message) == ("fail", "the job was cancelled")
    with factory() as session:
        sweep = service.get_sweep(session, sweep_id)
        assert sweep.status == "failed" and sweep.error["code"] == "no_trial_completed"
        with pytest.raises(NotFound):
            service.best_dict(session, sweep_id)


def test_the_median_pruner_cancels_a_poor_running_trial(factory, sweep_request, make_driver) -> None:
    sweep_id = _create(factory, sweep_request(n_trials=2, parallel=1, pruner={"type": "median"}))
    driver = make_driver(factory)
    driver.tick()
    _end(factory, _trials(factory, sweep_id)[0].job_id, [3.0, 2.0, 1.0])
    driver.tick()  # trial 0 completes, trial 1 is queued
    second = _trials(factory, sweep_id)[1]
    _end(factory, second.job_id, [5.0], status="running")
    driver.tick()
    second = _trials(factory, sweep_id)[1]
    assert second.state == "pruned" and second.value == 5.0 and "pruned at step 2" in second.message
    with factory() as session:
        job = get_job(session, second.job_id)
        assert job.requested_action == "cancel"  # the worker stops the engine
        set_status(session, job, "cancelled")
        session.commit()
    driver.tick()
    with factory() as session:
        assert service.get_sweep(session, sweep_id).status == "completed"
    assert _trials(factory, sweep_id)[1].state == "pruned"


def test_a_trial_asked_before_a_restart_is_adopted_once(factory, sweep_request, make_driver) -> None:
    sweep_id = _create(factory, sweep_request(n_trials=2))
    with factory() as session:  # a driver that asked Optuna, then stopped before making the job
        sweep = service.get_sweep(session, sweep_id)
        asked = study.load(service.database_url(session), sweep).ask(study.distributions(sweep.search))
    driver = make_driver(factory)
    driver.tick()
    driver.tick()
    trials = _trials(factory, sweep_id)
    assert [t.number for t in trials] == [0] and trials[0].params == asked.params
    assert _optuna_count(factory, sweep_id) == 1  # adopted, not asked again
    _end(factory, trials[0].job_id, [1.0])
    driver.tick()
    driver.tick()
    assert [t.number for t in _trials(factory, sweep_id)] == [0, 1]
    assert _optuna_count(factory, sweep_id) == 2


def test_a_trial_row_without_its_job_id_finds_its_job(factory, sweep_request, make_driver) -> None:
    sweep_id = _create(factory, sweep_request(n_trials=1))
    driver = make_driver(factory)
    driver.tick()
    with factory() as session:
        row = session.scalar(select(SweepTrial).where(SweepTrial.sweep_id == sweep_id))
        job_id, row.job_id = row.job_id, None
        session.commit()
    driver.tick()
    assert _trials(factory, sweep_id)[0].job_id == job_id
    with factory() as session:
        assert len([j for j in session.scalars(select(Job)) if f"sweep:{sweep_id}" in j.tags]) == 1


def test_one_driver_at_a_time_per_sweep(factory, sweep_request, make_driver) -> None:
    sweep_id = _create(factory, sweep_request(n_trials=2))
    first, second = make_driver(factory), make_driver(factory)
    assert first.tick() == 1
    assert second.tick() == 0  # the lease is held
    with factory() as session:
        session.get(Sweep, sweep_id).driver_lease_expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    assert second.tick() == 1  # a stopped driver's lease expires
    assert len(_trials(factory, sweep_id)) == 1


def test_cancel_stops_the_sweep_and_its_jobs(factory, sweep_request, make_driver) -> None:
    sweep_id = _create(factory, sweep_request(n_trials=4, parallel=2))
    make_driver(factory).tick()
    with factory() as session:
        service.cancel_sweep(session, sweep_id)
        with pytest.raises(Conflict):
            service.cancel_sweep(session, sweep_id)
    trials = _trials(factory, sweep_id)
    assert [t.state for t in trials] == ["fail", "fail"]
    with factory() as session:
        assert {get_job(session, t.job_id).status for t in trials} == {"cancelled"}
    assert make_driver(factory).tick() == 0


def test_the_minutes_budget_stops_new_trials(factory, sweep_request, make_driver) -> None:
    sweep_id = _create(factory, sweep_request(n_trials=None, budget_minutes=1))
    driver = make_driver(factory)
    driver.tick()
    _end(factory, _trials(factory, sweep_id)[0].job_id, [1.0])
    with factory() as session:
        session.get(Sweep, sweep_id).created_at = utcnow() - timedelta(minutes=2)
        session.commit()
    driver.tick()
    assert len(_trials(factory, sweep_id)) == 1
    with factory() as session:
        assert service.get_sweep(session, sweep_id).status == "completed"


def test_a_trial_whose_job_cannot_be_made_fails_without_looping(factory, sweep_request, make_driver,
                                                                dataset_file) -> None:  # fmt: skip
    sweep_id = _create(factory, sweep_request(n_trials=2))
    dataset_file.unlink()  # the dataset went away after the sweep was made
    driver = make_driver(factory)
    for _ in range(3):
        driver.tick()
    trials = _trials(factory, sweep_id)
    assert [t.state for t in trials] == ["fail", "fail"] and all(t.job_id is None for t in trials)
    assert "numbers.json" in trials[0].message
    with factory() as session:
        assert service.get_sweep(session, sweep_id).status == "failed"
    assert _optuna_count(factory, sweep_id) == 2


def test_best_configuration_for_a_model_and_dataset(factory, sweep_request, make_driver,
                                                     tiny_model_dir, dataset_file) -> None:  # fmt: skip
    sweep_id = _create(factory, sweep_request(n_trials=2, parallel=2))
    make_driver(factory).tick()
    trials = _trials(factory, sweep_id)
    with factory() as session:  # what the worker's outcome step records for a completed trial job
        from tunelab.jobs.configurations import record_result

        for trial, loss in zip(trials, [2.0, 1.5], strict=True):
            job = get_job(session, trial.job_id)
            record_result(session, job.config, {"eval_loss": loss}, job_id=job.id, configuration_id=job.configuration_id)
        found = service.best_for(session, str(tiny_model_dir), str(dataset_file))
    assert found["source"] == {"job_id": trials[1].job_id, "sweep_id": sweep_id, "trial": 1}
    assert found["configuration"]["eval_loss"] == 1.5 and found["configuration"]["mode"] == "automated"
    assert found["configuration"]["hyperparameters"]["learning_rate"] == trials[1].params["learning_rate"]


def test_the_grid_visits_every_point_once(factory, sweep_request, make_driver) -> None:
    grid = {"learning_rate": {"choices": [1e-2, 1e-6, 2e-6]}, "lora.r": {"choices": [4, 8]}}
    sweep_id = _create(factory, sweep_request(sampler="grid", search=grid, n_trials=None, parallel=3))
    driver = make_driver(factory)
    for _ in range(3):
        driver.tick()
        for trial in _trials(factory, sweep_id):
            if trial.state == "running":
                _end(factory, trial.job_id, [1.0 + trial.number])
    driver.tick()
    points = {(t.params["learning_rate"], t.params["lora.r"]) for t in _trials(factory, sweep_id)}
    assert len(points) == len(_trials(factory, sweep_id)) == 6
    with factory() as session:
        assert service.get_sweep(session, sweep_id).status == "completed"


def test_tunelab_serve_starts_the_driver_thread(tunelab_home, sweep_request) -> None:
    import time

    from tunelab.cli.serve import sweep_driver
    from tunelab.settings import Settings
    from tunelab.store.db import session_factory

    settings = Settings(home=tunelab_home, monitor_interval_s=0)
    factory = session_factory(settings.resolved_database_url)
    sweep_id = _create(factory, sweep_request(n_trials=1))
    driver = sweep_driver(settings, 1)
    try:
        deadline = time.monotonic() + 30
        while not _trials(factory, sweep_id) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        driver.stop()
    assert [t.number for t in _trials(factory, sweep_id)] == [0]
    assert driver.capacity == 1
