"""Sweeps: create, list, inspect, cancel; trials, importances, best, train the best; automated mode.

Thin over ``tunelab.sweeps.service`` and ``tunelab.sweeps.propose``; the
trials themselves are made and followed by the sweep driver in ``tunelab serve``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from tunelab.api.deps import ReadScope, ServerPaths, SessionDep, TrainScope
from tunelab.api.schemas import Offset
from tunelab.jobs.names import check_name
from tunelab.sweeps import propose as proposals
from tunelab.sweeps import service
from tunelab.sweeps.space import MAX_TRIALS, PrunerConfig, SweepConfig

router = APIRouter(prefix="/api/sweeps", tags=["sweeps"])

SweepId = Annotated[str, Path(min_length=1, max_length=64, description="Sweep id (swp-...).")]


class ProposeRequest(BaseModel):
    """Automated mode: only a model, a dataset and a budget; ``run`` starts the proposed sweep."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(min_length=1, max_length=500, description="Model id, collection id or Hub id.")
    dataset: str = Field(min_length=1, max_length=500, description="Stored dataset version id or name.")
    n_trials: int | None = Field(None, ge=1, le=MAX_TRIALS, description="Budget in trials (default 10).")
    budget_minutes: float | None = Field(None, gt=0, le=10_080, description="Budget in minutes.")
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="Fixed TrainConfig fields.")
    pruner: PrunerConfig | None = Field(None, description="Optional pruner (needs hyperparameters.eval_steps).")
    name: str = Field("", max_length=200, description="Sweep name when run.")
    parallel: int = Field(1, ge=1, le=64, description="Trials at once when run.")
    run: bool = Field(False, description="Create the proposed sweep now (mode automated).")


class TrainBestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200, description="Name of the new job.")
    max_steps: int | None = Field(None, ge=1, le=1_000_000, description="Override the trials' max_steps.")


@router.post("", status_code=201, summary="Create a sweep (its trials are queued as jobs)")
def create_sweep(body: SweepConfig, session: SessionDep, _: TrainScope, paths: ServerPaths) -> dict[str, Any]:
    sweep = service.create_sweep(session, body, paths=paths)
    return service.sweep_dict(session, sweep)


@router.get("", summary="List sweeps (newest first)")
def list_sweeps(
    session: SessionDep,
    _: ReadScope,
    status: Annotated[str | None, Query(max_length=16, description="running, completed, failed or cancelled.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    rows, total = service.list_sweeps(session, status=status, limit=limit, offset=offset)
    return {"data": [service.sweep_dict(session, row) for row in rows], "count": total}


@router.post("/propose", summary="Automated mode: ranges from model and dataset size, with reasons")
def propose_sweep(body: ProposeRequest, session: SessionDep, _: TrainScope, paths: ServerPaths) -> dict[str, Any]:
    check_name(body.name, "name")
    out = proposals.propose(session, body.model, body.dataset, n_trials=body.n_trials,
                            budget_minutes=body.budget_minutes, hyperparameters=body.hyperparameters, paths=paths)  # fmt: skip
    out["sweep"] |= {"name": body.name, "parallel": body.parallel,
                     "pruner": body.pruner.model_dump() if body.pruner else None}  # fmt: skip
    out["created"] = None
    if body.run:
        sweep = service.create_sweep(session, out["sweep"], paths=paths, mode="automated",
                                     proposal={"explanations": out["explanations"]})  # fmt: skip
        out["created"] = service.sweep_dict(session, sweep)
    return out


@router.get("/best-configuration", summary="Best configuration for a model and dataset (jobs and sweeps)")
def best_configuration(
    session: SessionDep,
    _: ReadScope,
    paths: ServerPaths,
    model: Annotated[str, Query(min_length=1, max_length=500, description="Model id.")],
    dataset: Annotated[str, Query(min_length=1, max_length=500, description="Dataset version id or name.")],
) -> dict[str, Any]:
    return service.best_for(session, model, dataset, paths=paths)


@router.get("/{sweep_id}", summary="One sweep")
def get_sweep(sweep_id: SweepId, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return service.sweep_dict(session, service.get_sweep(session, sweep_id))


@router.post("/{sweep_id}/cancel", summary="Cancel a sweep and its unfinished trial jobs")
def cancel_sweep(sweep_id: SweepId, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    return service.sweep_dict(session, service.cancel_sweep(session, sweep_id))


@router.get("/{sweep_id}/trials", summary="The sweep's trials with their jobs")
def list_trials(sweep_id: SweepId, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    from tunelab.store.models import Job

    rows = service.list_trials(session, sweep_id)
    data = [service.trial_dict(row, session.get(Job, row.job_id) if row.job_id else None) for row in rows]
    return {"data": data, "count": len(data)}


@router.get("/{sweep_id}/importances", summary="Parameter importances (fANOVA over completed trials)")
def importances(sweep_id: SweepId, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return service.importances(session, sweep_id)


@router.get("/{sweep_id}/best", summary="The best trial and its saved configuration")
def best(sweep_id: SweepId, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return service.best_dict(session, sweep_id)


@router.post("/{sweep_id}/train-best", status_code=201, summary="Train the best configuration as a new job")
def train_best(sweep_id: SweepId, session: SessionDep, _: TrainScope, body: TrainBestRequest | None = None) -> dict[str, Any]:
    body = body or TrainBestRequest()
    check_name(body.name, "name")
    return service.train_best(session, sweep_id, name=body.name, max_steps=body.max_steps).to_dict()
