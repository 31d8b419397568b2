"""Sweep service functions: the one way the API, CLI and dashboard create and read sweeps.

Like ``jobs.service``, each takes a ``Session`` and commits what it changes.
A sweep is checked completely at creation (the search space against
TrainConfig, the base job as a job would be), so a sweep that exists can
always make its trials. Trials are made by the driver (``sweeps.driver``), not
here: creating a sweep only stores it and opens its Optuna study.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.errors import ConfigError, Conflict, InvalidInput, NotFound
from tunelab.jobs.paths import ADMITTED, LOCAL, PathAccess, admit_code
from tunelab.store.models import Job, Sweep, SweepTrial, utcnow
from tunelab.sweeps import study as studies
from tunelab.sweeps.space import SweepConfig, check_space, grid_size, set_path

#: Sweep states; ``running`` is the only one the driver works on.
STATUSES = ("running", "completed", "failed", "cancelled")
#: Trial states (Optuna's, lower case).
TRIAL_STATES = ("running", "complete", "pruned", "fail")


def database_url(session: Session) -> str:
    """The store's URL, for Optuna's storage on the same database."""
    return session.get_bind().engine.url.render_as_string(hide_password=False)


def parse_config(data: dict[str, Any] | SweepConfig) -> SweepConfig:
    """A ``SweepConfig`` from a dict (a YAML file, the SDK), as one ``ConfigError`` naming each bad field."""
    if isinstance(data, SweepConfig):
        return data
    if not isinstance(data, dict):
        raise ConfigError("a sweep must be an object", "send {model, dataset, search: {...}, n_trials}")
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"`{'.'.join(str(p) for p in err['loc'])}`: {err['msg']}" for err in exc.errors()]
        raise ConfigError("Invalid sweep: " + "; ".join(lines), "fix the fields named above",
                          details={"errors": lines}) from None  # fmt: skip


def _check_budget(config: SweepConfig, space: dict[str, dict[str, Any]]) -> int | None:
    n_trials = config.n_trials
    if config.sampler == "grid":
        size = grid_size(space)
        n_trials = min(n_trials or size, size)
    if n_trials is None and config.budget_minutes is None:
        raise ConfigError("a sweep needs a budget: `n_trials` or `budget_minutes`",
                          "e.g. n_trials: 6, or budget_minutes: 30", details={"fields": ["n_trials"]})  # fmt: skip
    return n_trials


def _check_pruner(config: SweepConfig, hyper: dict[str, Any]) -> None:
    if config.pruner is None:
        return
    if not hyper.get("eval_steps"):
        raise ConfigError(
            "`pruner` needs intermediate evaluations, but `hyperparameters.eval_steps` is 0",
            "set hyperparameters.eval_steps (e.g. 5) so each trial reports its eval loss while it trains",
            details={"fields": ["hyperparameters.eval_steps"]},
        )


def is_evaluation_objective(objective: str) -> bool:
    """True for a value of the after-job evaluation (``rougeL``, ``probe_right``), not one the engine logs.

    The engine logs ``eval_loss`` and ``loss`` (``metrics`` rows) while it
    trains; those stay logged objectives, reported to the pruner step by step.
    """
    from tunelab.evaluation.metrics import METRICS
    from tunelab.evaluation.service import JOB_EXTRA_VALUES
    from tunelab.store.models import Metric

    return (objective in METRICS or objective in JOB_EXTRA_VALUES) and objective not in Metric.__table__.columns


def _check_objective(config: SweepConfig, hyper: dict[str, Any]) -> None:
    """An evaluation objective must be one the trials' after-job evaluation produces."""
    from tunelab.evaluation.service import job_evaluation_values

    if not is_evaluation_objective(config.objective):
        return
    if config.pruner is not None:
        raise ConfigError(
            f"`pruner` needs intermediate values, but `objective` {config.objective!r} is measured once, "
            "by the after-job evaluation", "drop the pruner, or optimise eval_loss (logged while each trial trains)",
            details={"fields": ["pruner", "objective"]},
        )
    output = hyper.get("output") or {}
    produced = job_evaluation_values(output)
    if config.objective in produced:
        return
    if not produced:
        fix = "set hyperparameters.output.evaluate: true (the trials' evaluation is off)"
    elif config.objective == "probe_right":
        fix = "set hyperparameters.output.eval_probe: true"
    elif config.objective == "judge_score":
        fix = "set hyperparameters.output.eval_judge_url (or the server's TUNELAB_JUDGE_URL)"
    else:
        fix = f"add {config.objective!r} to hyperparameters.output.eval_metrics"
    raise ConfigError(
        f"`objective` {config.objective!r} is a value of the after-job evaluation, but the trials' evaluation "
        f"does not produce it (it gives: {', '.join(produced) or 'nothing'})",
        f"{fix}, or optimise one of those", details={"fields": ["objective"]},
    )


def first_params(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One point of the space (lows and first choices), to validate the base job with."""
    out = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            out[name] = spec["choices"][0]
        else:
            out[name] = int(spec["low"]) if spec["type"] == "int" else float(spec["low"])
    return out


def trial_hyperparameters(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    hyper = dict(base)
    for name, value in params.items():
        hyper = set_path(hyper, name, value)
    return hyper


def create_sweep(
    session: Session,
    data: dict[str, Any] | SweepConfig,
    *,
    paths: PathAccess = LOCAL,
    mode: str = "manual",
    proposal: dict[str, Any] | None = None,
) -> Sweep:
    """Check and store a sweep and create its Optuna study; the driver makes its trials."""
    from tunelab.jobs.names import check_name
    from tunelab.jobs.trainconfig import nest_hyperparameters, validate_job_config

    config = parse_config(data)
    check_name(config.name, "name")
    space = check_space(config.search, config.hyperparameters)
    for choice in space.get("loss.loss_fn", {}).get("choices") or []:  # code, in every trial: admins only
        admit_code({"loss": {"loss_fn": choice}}, paths, prefix="search")
    hyper = nest_hyperparameters(dict(config.hyperparameters))
    n_trials = _check_budget(config, space)
    _check_pruner(config, hyper)
    _check_objective(config, hyper)
    sample = {"model": config.model, "dataset": config.dataset,
              "hyperparameters": trial_hyperparameters(hyper, first_params(space))}  # fmt: skip
    admitted = validate_job_config(session, sample, paths)
    session.commit()  # end our read before Optuna writes (see ``sweeps.driver``)
    sweep_id = f"swp-{uuid.uuid4().hex[:12]}"
    sweep = Sweep(
        id=sweep_id, name=config.name or sweep_id, model=config.model, dataset=config.dataset,
        base={"model": admitted["model"], "dataset": admitted["dataset"], "hyperparameters": hyper},
        search=space, sampler=config.sampler, pruner=config.pruner.model_dump() if config.pruner else None,
        objective=config.objective, direction=config.direction, n_trials=n_trials,
        budget_minutes=config.budget_minutes, parallel=config.parallel, seed=config.seed, mode=mode,
        proposal=proposal, study_name=f"tunelab-{sweep_id}", status="running",
    )  # fmt: skip
    studies.create(database_url(session), sweep.study_name, config.direction)
    session.add(sweep)
    session.commit()
    return sweep


def get_sweep(session: Session, sweep_id: str) -> Sweep:
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise NotFound(f"no sweep with id {sweep_id!r}", "list sweeps with `tunelab sweeps list`")
    return sweep


def list_sweeps(session: Session, *, status: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Sweep], int]:
    """Sweeps newest first; returns (page, total)."""
    query = select(Sweep)
    if status:
        if status not in STATUSES:
            raise InvalidInput(f"unknown sweep status {status!r}", f"use one of: {', '.join(STATUSES)}")
        query = query.where(Sweep.status == status)
    rows = list(session.scalars(query.order_by(Sweep.created_at.desc(), Sweep.id)))
    limit = max(1, min(limit, 1000))
    return rows[offset : offset + limit], len(rows)


def list_trials(session: Session, sweep_id: str) -> list[SweepTrial]:
    get_sweep(session, sweep_id)
    query = select(SweepTrial).where(SweepTrial.sweep_id == sweep_id).order_by(SweepTrial.number)
    return list(session.scalars(query))


def trial_dict(trial: SweepTrial, job: Job | None = None) -> dict[str, Any]:
    out = trial.to_dict()
    if job is not None:
        out["job"] = {"id": job.id, "status": job.status, "global_step": job.global_step, "progress": job.progress}
    return out


def sweep_dict(session: Session, sweep: Sweep) -> dict[str, Any]:
    """A sweep as the API shows it: its row plus trial counts by state and the best trial."""
    out = sweep.to_dict()
    for key in ("driver_id", "driver_lease_expires_at", "base"):
        out.pop(key, None)
    out["hyperparameters"] = sweep.base.get("hyperparameters", {})
    trials = list(session.scalars(select(SweepTrial).where(SweepTrial.sweep_id == sweep.id)))
    out["trials"] = {state: sum(1 for t in trials if t.state == state) for state in TRIAL_STATES}
    out["trials"]["total"] = len(trials)
    return out


def cancel_sweep(session: Session, sweep_id: str) -> Sweep:
    """Stop the sweep: no new trials, and every trial job not finished is cancelled."""
    from tunelab.jobs import service as jobs
    from tunelab.jobs.states import JobStatus

    sweep = get_sweep(session, sweep_id)
    if sweep.status != "running":
        raise Conflict(f"sweep {sweep.id} is already {sweep.status}", "only a running sweep can be cancelled",
                       details={"status": sweep.status, "allowed": ["running"]})  # fmt: skip
    import optuna

    from tunelab.sweeps.driver import tell

    sweep.status = "cancelled"
    sweep.finished_at = utcnow()
    session.commit()  # also ends our read before Optuna writes (see ``sweeps.driver``)
    study = studies.load(database_url(session), sweep)
    for trial in list_trials(session, sweep_id):
        job = session.get(Job, trial.job_id) if trial.job_id else None
        if job is not None and not JobStatus(job.status).is_terminal():
            jobs.cancel_job(session, job.id)
        if trial.state == "running":
            tell(session, study, trial.number, state=optuna.trial.TrialState.FAIL)
            trial.state, trial.message, trial.finished_at = "fail", "the sweep was cancelled", utcnow()
    session.commit()
    return sweep


def importances(session: Session, sweep_id: str) -> dict[str, Any]:
    """How much each parameter explains the objective (Optuna's fANOVA); needs two finished trials."""
    import optuna

    sweep = get_sweep(session, sweep_id)
    study = studies.load(database_url(session), sweep)
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 2 or len(sweep.search) < 1:
        return {"importances": {}, "trials": len(done), "note": "needs at least 2 completed trials"}
    try:
        found = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as error:  # e.g. every trial chose the same values
        return {"importances": {}, "trials": len(done), "note": str(error)}
    return {"importances": {name: round(float(v), 6) for name, v in found.items()}, "trials": len(done), "note": None}


def best_trial(session: Session, sweep_id: str) -> SweepTrial:
    """The completed trial with the best objective (lowest, or highest when maximising)."""
    sweep = get_sweep(session, sweep_id)
    done = [t for t in list_trials(session, sweep_id) if t.state == "complete" and t.value is not None]
    if not done:
        raise NotFound(f"sweep {sweep.id} has no completed trial yet", "wait for a trial to finish")
    pick = max if sweep.direction == "maximize" else min
    return pick(done, key=lambda t: (t.value, -t.number) if sweep.direction == "maximize" else (t.value, t.number))


def best_dict(session: Session, sweep_id: str) -> dict[str, Any]:
    from tunelab.jobs.configurations import configuration_dict, find_configuration

    sweep = get_sweep(session, sweep_id)
    trial = best_trial(session, sweep_id)
    row = find_configuration(session, sweep.best_configuration_id) if sweep.best_configuration_id else None
    if row is None:
        row = save_best(session, sweep, trial)
    return {"sweep_id": sweep.id, "objective": sweep.objective, "direction": sweep.direction,
            "trial": trial_dict(trial), "configuration": configuration_dict(row)}  # fmt: skip


def trial_config(sweep: Sweep, params: dict[str, Any]) -> dict[str, Any]:
    return {"model": sweep.base["model"], "dataset": sweep.base["dataset"],
            "hyperparameters": trial_hyperparameters(sweep.base["hyperparameters"], params)}  # fmt: skip


def save_best(session: Session, sweep: Sweep, trial: SweepTrial) -> Any:
    """Save the best trial's configuration (mode ``automated``: found by search) and point the sweep at it."""
    from tunelab.jobs.configurations import save_configuration

    row = save_configuration(session, trial_config(sweep, trial.params), name=f"best of sweep {sweep.name}",
                             mode="automated", commit=False, paths=ADMITTED)  # fmt: skip
    row.metrics = {**(row.metrics or {}), sweep.objective: trial.value}
    if sweep.objective == "eval_loss" and trial.value is not None and (row.eval_loss is None or trial.value < row.eval_loss):
        row.eval_loss = trial.value
    row.job_id = row.job_id or trial.job_id
    sweep.best_trial, sweep.best_value, sweep.best_configuration_id = trial.number, trial.value, row.id
    session.commit()
    return row


def train_best(session: Session, sweep_id: str, *, name: str = "", max_steps: int | None = None) -> Job:
    """One action: a new job from the best trial's configuration, saving its model."""
    from tunelab.jobs import service as jobs

    sweep = get_sweep(session, sweep_id)
    best = best_dict(session, sweep_id)
    config = trial_config(sweep, best["trial"]["params"])
    if max_steps is not None:
        config["hyperparameters"]["max_steps"] = max_steps
    return jobs.create_job(session, config, name=name or f"{sweep.name} best", tags=["sweep-best", f"sweep:{sweep.id}"],
                           configuration_id=best["configuration"]["id"], paths=ADMITTED)  # fmt: skip


def best_for(session: Session, model: str, dataset: str, *, paths: PathAccess = LOCAL) -> dict[str, Any]:
    """Scope 5: the best configuration for a model and dataset, from completed jobs and sweeps alike.

    Model and dataset are admitted as a job's would be, so the name a user
    types finds the rows jobs stored; the answer says which job (and sweep
    trial, if any) produced it, ready for the new-job form.
    """
    from tunelab.jobs.configurations import best_configuration, configuration_dict
    from tunelab.jobs.trainconfig import admit_job_config, normalise_job_config

    admitted = admit_job_config(session, normalise_job_config({"model": model, "dataset": dataset}), paths)
    row = best_configuration(session, admitted["model"], admitted["dataset"])
    source: dict[str, Any] = {"job_id": row.job_id, "sweep_id": None, "trial": None}
    if row.job_id:
        trial = session.scalar(select(SweepTrial).where(SweepTrial.job_id == row.job_id))
        if trial is not None:
            source |= {"sweep_id": trial.sweep_id, "trial": trial.number}
    return {"configuration": configuration_dict(row), "source": source}
