"""A sweep whose objective is a value of each trial's after-job evaluation (``rougeL``, ``probe_right``...).

The fast tests write job ends and evaluation results the way the worker and
``evaluation.service.execute`` write them; the slow one trains the trials with
real workers and reads the evaluations they really produced.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tunelab.errors import ConfigError
from tunelab.evaluation import service as evaluations
from tunelab.jobs.events import set_status
from tunelab.jobs.service import get_job
from tunelab.store.models import Evaluation, ModelEntry, SweepTrial
from tunelab.sweeps import service

EVALUATED = {"evaluate": True, "eval_metrics": ["rougeL", "exact_match"], "eval_probe": True}


def _trials(factory: sessionmaker[Session], sweep_id: str) -> list[SweepTrial]:
    with factory() as session:
        return service.list_trials(session, sweep_id)


def _body(sweep_request: Any, **overrides: Any) -> dict[str, Any]:
    body = sweep_request(n_trials=2, parallel=2, **overrides)
    body["hyperparameters"] = {**body["hyperparameters"], "output": dict(EVALUATED)}
    return body


def _complete(factory: sessionmaker[Session], job_id: str) -> None:
    with factory() as session:
        job = get_job(session, job_id)
        set_status(session, job, "running")
        set_status(session, job, "completed")
        session.commit()


def _evaluated(factory: sessionmaker[Session], job_id: str, result: dict[str, Any] | None) -> None:
    """What ``evaluate_job`` stores: a ``source="job"`` evaluation, completed with its summary or failed."""
    with factory() as session:
        row = evaluations.create(session, {"model": job_id, "metrics": EVALUATED["eval_metrics"], "probe": True},
                                 source="job", job_id=job_id)  # fmt: skip
        if result is None:
            row.status, row.error = "failed", {"code": "model_failed", "message": "the model did not load"}
        else:
            row.status, row.summary = "completed", result
        session.commit()


@pytest.mark.parametrize(("objective", "direction", "results", "best"), [
    ("rougeL", "maximize", [31.5, 62.0], 1),
    ("probe_right", "minimize", [3, 5], 0),
])  # fmt: skip
def test_an_evaluation_metric_is_the_objective(factory, sweep_request, make_driver, objective: str,
                                               direction: str, results: list[float], best: int) -> None:  # fmt: skip
    with factory() as session:
        sweep_id = service.create_sweep(session, _body(sweep_request, objective=objective, direction=direction)).id
    driver = make_driver(factory)
    driver.tick()
    trials = _trials(factory, sweep_id)
    with factory() as session:  # the evaluation needs the weights: these trials keep them until it has run
        assert {get_job(session, t.job_id).save_options["save_model"] for t in trials} == {True}
    for trial in trials:
        _complete(factory, trial.job_id)
    driver.tick()
    assert [t.state for t in _trials(factory, sweep_id)] == ["running", "running"]  # waiting for the evaluations
    for trial, value in zip(trials, results, strict=True):
        summary = {"summary": {"model": {"rougeL": value, "exact_match": 0.0}, "against": {"rougeL": 1.0}},
                   "retention": {"tuned_correct": value, "base_correct": 6}}  # fmt: skip
        _evaluated(factory, trial.job_id, summary)
    driver.tick()
    trials = _trials(factory, sweep_id)
    assert [(t.state, t.value) for t in trials] == [("complete", float(v)) for v in results]
    with factory() as session:
        sweep = service.get_sweep(session, sweep_id)
        assert sweep.status == "completed" and sweep.best_trial == best and sweep.best_value == results[best]


def test_a_failed_evaluation_fails_its_trial_and_releases_the_weights(factory, sweep_request, make_driver,
                                                                      tmp_path: Path) -> None:  # fmt: skip
    with factory() as session:
        sweep_id = service.create_sweep(session, _body(sweep_request, objective="rougeL", direction="maximize")).id
    driver = make_driver(factory)
    driver.tick()
    first, second = _trials(factory, sweep_id)
    with factory() as session:  # the first trial's weights and collection entry, as the worker leaves them
        job = get_job(session, first.job_id)
        job.run_dir = str(tmp_path / "run")
        (tmp_path / "run" / "output").mkdir(parents=True)
        (tmp_path / "run" / "output" / "adapter_model.safetensors").write_bytes(b"weights")
        from tunelab.store.catalog import add_model, tuned_model_id

        entry_id = tuned_model_id(str(job.config["model"]), job.name, job.id)
        add_model(session, entry_id, source="job", location=job.run_dir)
    for trial in (first, second):
        _complete(factory, trial.job_id)
    _evaluated(factory, first.job_id, {"summary": {"model": {"rougeL": 40.0}}, "retention": None})
    _evaluated(factory, second.job_id, None)
    driver.tick()
    first, second = _trials(factory, sweep_id)
    assert (first.state, first.value) == ("complete", 40.0)
    assert second.state == "fail" and "the model did not load" in second.message
    assert not (tmp_path / "run" / "output" / "adapter_model.safetensors").exists()
    with factory() as session:
        assert session.get(ModelEntry, entry_id) is None
        assert service.get_sweep(session, sweep_id).best_trial == 0


def test_an_evaluation_that_never_starts_fails_its_trial(factory, sweep_request, make_driver) -> None:
    from datetime import timedelta

    from tunelab.store.models import utcnow
    from tunelab.sweeps.driver import EVALUATION_START_S

    with factory() as session:
        body = _body(sweep_request, objective="rougeL", direction="maximize")
        sweep_id = service.create_sweep(session, {**body, "n_trials": 1, "parallel": 1}).id
    driver = make_driver(factory)
    driver.tick()
    (trial,) = _trials(factory, sweep_id)
    _complete(factory, trial.job_id)
    driver.tick()
    assert _trials(factory, sweep_id)[0].state == "running"  # the evaluation may still be on its way
    with factory() as session:  # the worker stopped between the job's end and its evaluation
        get_job(session, trial.job_id).finished_at = utcnow() - timedelta(seconds=EVALUATION_START_S + 1)
        session.commit()
    driver.tick()
    (trial,) = _trials(factory, sweep_id)
    assert trial.state == "fail" and "did not start" in trial.message
    with factory() as session:
        assert service.get_sweep(session, sweep_id).status == "failed"


@pytest.mark.parametrize(("objective", "output", "fix"), [
    ("rougeL", {"eval_metrics": ["bleu"]}, "add 'rougeL' to hyperparameters.output.eval_metrics"),
    ("bleu", {"evaluate": False}, "set hyperparameters.output.evaluate: true"),
    ("probe_right", {"eval_probe": False}, "set hyperparameters.output.eval_probe: true"),
    ("judge_score", {}, "set hyperparameters.output.eval_judge_url"),
])  # fmt: skip
def test_an_objective_the_evaluation_does_not_produce_is_refused(factory, sweep_request, objective: str,
                                                                  output: dict[str, Any], fix: str) -> None:  # fmt: skip
    body = sweep_request(objective=objective, direction="maximize")
    body["hyperparameters"] = {**body["hyperparameters"], "output": output}
    with factory() as session, pytest.raises(ConfigError) as caught:
        service.create_sweep(session, body)
    assert f"`objective` {objective!r}" in caught.value.message and fix in caught.value.hint
    assert caught.value.details["fields"] == ["objective"]
    with factory() as session:
        assert service.list_sweeps(session)[1] == 0


def test_a_pruner_with_an_evaluation_objective_is_refused(factory, sweep_request) -> None:
    body = _body(sweep_request, objective="rougeL", pruner={"type": "median"})
    with factory() as session, pytest.raises(ConfigError) as caught:
        service.create_sweep(session, body)
    assert "`pruner`" in caught.value.message and "measured once" in caught.value.message


@pytest.mark.slow
def test_real_trials_are_ranked_by_their_after_job_rouge(factory, sweep_request, make_driver, make_worker) -> None:
    from tests.sweeps.test_sweep_runs import Server

    body = _body(sweep_request, objective="rougeL", direction="maximize")
    body["hyperparameters"]["output"] = {"evaluate": True, "eval_metrics": ["rougeL"], "eval_probe": False,
                                         "eval_metric_rows": 4, "max_new_tokens": 8, "eval_generations": 0}  # fmt: skip
    body["search"] = {"learning_rate": {"choices": [1e-2, 1e-5]}}
    body["sampler"] = "grid"
    with factory() as session:
        sweep_id = service.create_sweep(session, body).id
    server = Server(factory, make_driver, make_worker)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with factory() as session:
                if service.get_sweep(session, sweep_id).status != "running":
                    break
            time.sleep(0.5)
    finally:
        server.stop()
    with factory() as session:
        sweep = service.get_sweep(session, sweep_id)
        trials = service.list_trials(session, sweep_id)
        assert sweep.status == "completed", [(t.state, t.message) for t in trials]
        for trial in trials:
            evaluation = session.scalars(select(Evaluation).where(Evaluation.job_id == trial.job_id)).one()
            assert trial.state == "complete" and evaluation.status == "completed"
            assert trial.value == evaluation.summary["summary"]["model"]["rougeL"]
            run = Path(get_job(session, trial.job_id).run_dir)
            assert not list(run.rglob("*.safetensors"))  # released once read, as saveModel false would
        assert sweep.best_value == max(t.value for t in trials)
        assert not [e for e in session.scalars(select(ModelEntry)) if e.source == "job"]
