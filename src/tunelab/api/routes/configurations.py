"""Saved configurations: readable stable ids (see ``jobs.configurations``), listing, best by eval loss."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from tunelab.api.deps import ReadScope, ServerPaths, SessionDep, TrainScope
from tunelab.api.schemas import ConfigurationCreate, Page
from tunelab.jobs import configurations as service
from tunelab.jobs.names import check_name
from tunelab.training.config import TrainConfig

router = APIRouter(prefix="/api/configurations", tags=["configurations"])


ModeQuery = Annotated[
    service.Mode | None, Query(description="Only configurations saved in this mode (manual or automated).")
]


def load_configuration(session: Session, config_id: str) -> dict[str, Any]:
    """A saved configuration as the API shows it, with ``uid``, ``mode`` and the id's ``fields``."""
    return service.configuration_dict(service.get_configuration(session, config_id))


@router.post("", status_code=201, summary="Save a configuration (same content, same id)")
def save_configuration(body: ConfigurationCreate, session: SessionDep, _: TrainScope,
                       paths: ServerPaths) -> dict[str, Any]:  # fmt: skip
    check_name(body.name, "name")
    config = body.model_dump(exclude={"name", "mode"})
    row = service.save_configuration(session, config, name=body.name, mode=body.mode, paths=paths)
    return service.configuration_dict(row)


@router.get("", response_model=Page, summary="List configurations")
def list_configurations(
    session: SessionDep,
    _: ReadScope,
    model: Annotated[str | None, Query(description="Only this model.")] = None,
    dataset: Annotated[str | None, Query(description="Only this dataset.")] = None,
    mode: ModeQuery = None,
) -> dict[str, Any]:
    rows = service.list_configurations(session, model=model, dataset=dataset, mode=mode)
    return {"data": [service.configuration_dict(row) for row in rows], "count": len(rows)}


@router.get("/best", summary="Best configuration (lowest eval loss), over all or narrowed by filters")
def best_configuration(
    session: SessionDep,
    _: ReadScope,
    model: Annotated[str | None, Query(min_length=1, description="Only this model id or path.")] = None,
    dataset: Annotated[
        str | None, Query(min_length=1, description="Only this dataset version id, name or path.")
    ] = None,
    mode: ModeQuery = None,
) -> dict[str, Any]:
    """The guide's "load best configuration": ``?mode=manual`` alone works; 404 until a job was evaluated."""
    return service.configuration_dict(service.best_configuration(session, model, dataset, mode=mode))


@router.get(
    "/defaults",
    responses={200: {"model": TrainConfig}},
    summary="Every hyperparameter with its default",
)
def default_configuration(_: ReadScope) -> dict[str, Any]:
    """The engine's TrainConfig defaults; its schema (ranges, help) is in the OpenAPI document.

    One source for the API, the dashboard's form and the CLI help: the form reads
    this model's schema from ``/openapi.json``.
    """
    return TrainConfig.model_construct().model_dump(mode="json")


@router.get("/{config_id}", summary="One configuration")
def get_configuration(config_id: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return load_configuration(session, config_id)
