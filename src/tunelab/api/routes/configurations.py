"""Saved configurations: stable ids (content hash), listing, best by eval loss."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from tunelab.api.deps import ReadScope, SessionDep, TrainScope, check_name
from tunelab.api.schemas import ConfigurationCreate, Page
from tunelab.jobs import configurations as service
from tunelab.training.config import TrainConfig

router = APIRouter(prefix="/api/configurations", tags=["configurations"])


def load_configuration(session: Session, config_id: str) -> dict[str, Any]:
    """A saved configuration as a dict (used by job creation from ``configuration_id``)."""
    return service.get_configuration(session, config_id).to_dict()


@router.post("", status_code=201, summary="Save a configuration (same content, same id)")
def save_configuration(body: ConfigurationCreate, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    check_name(body.name, "name")
    config = body.model_dump(exclude={"name"})
    return service.save_configuration(session, config, name=body.name).to_dict()


@router.get("", response_model=Page, summary="List configurations")
def list_configurations(
    session: SessionDep,
    _: ReadScope,
    model: Annotated[str | None, Query(description="Only this model.")] = None,
    dataset: Annotated[str | None, Query(description="Only this dataset.")] = None,
) -> dict[str, Any]:
    rows = service.list_configurations(session, model=model, dataset=dataset)
    return {"data": [row.to_dict() for row in rows], "count": len(rows)}


@router.get("/best", summary="Best configuration (lowest eval loss) for a model and dataset")
def best_configuration(
    session: SessionDep,
    _: ReadScope,
    model: Annotated[str, Query(min_length=1, description="Model id or path.")],
    dataset: Annotated[str, Query(min_length=1, description="Dataset version id, name or path.")],
) -> dict[str, Any]:
    return service.best_configuration(session, model, dataset).to_dict()


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
