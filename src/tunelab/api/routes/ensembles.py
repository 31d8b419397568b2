"""Ensembles: ``/api/ensembles`` (create, list, one, delete).

Thin over ``tunelab.serving.ensembles``. Chat with an ensemble as
``model: "ens:NAME"`` on ``/v1/chat/completions`` and evaluate it with
``POST /api/evaluations`` (``model: "ens:NAME"``), like any other model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from tunelab.api.deps import ReadScope, SessionDep, SettingsDep, TrainScope
from tunelab.api.schemas import Strict
from tunelab.jobs.names import check_text
from tunelab.serving import ensembles as service

router = APIRouter(prefix="/api/ensembles", tags=["ensembles"])

EnsembleName = Annotated[
    str, Path(min_length=1, max_length=64, description="Ensemble name (or id).")
]
_Model = Annotated[str, Field(min_length=1, max_length=500)]


class EnsembleCreate(Strict):
    name: str = Field(
        min_length=1, max_length=64, description="Unique; chat with it as `ens:NAME`."
    )
    members: list[_Model] = Field(min_length=1, max_length=service.MAX_MEMBERS,
                                  description="Models from GET /v1/models (2 or more).")  # fmt: skip
    method: Literal["average", "vote"] = Field("average", description="`average`: mean next-token probabilities "
                                               "(one vocabulary); `vote`: the members' majority answer.")  # fmt: skip
    description: str = Field("", max_length=2000, description="What the ensemble is.")


class EnsemblesPublic(BaseModel):
    data: list[dict[str, Any]]
    count: int


@router.post("", status_code=201, summary="Create an ensemble (chat with it as model ens:NAME)")
async def create_ensemble(body: EnsembleCreate, session: SessionDep, settings: SettingsDep,
                          _: TrainScope) -> dict[str, Any]:  # fmt: skip
    check_text(body.description, "description")
    row = await run_in_threadpool(service.create, session, settings, body.name, body.members, body.method,
                                  body.description)  # fmt: skip
    return service.public(row)


@router.get("", response_model=EnsemblesPublic, summary="List ensembles (newest first)")
def list_ensembles(session: SessionDep, _: ReadScope) -> dict[str, Any]:
    rows = service.list_ensembles(session)
    return {"data": [service.public(row) for row in rows], "count": len(rows)}


@router.get("/{name}", summary="One ensemble")
def get_ensemble(name: EnsembleName, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return service.public(service.get(session, name))


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    summary="Delete an ensemble (its evaluations stay)",
)
def delete_ensemble(name: EnsembleName, session: SessionDep, _: TrainScope) -> Response:
    service.delete(session, name)
    return Response(status_code=204)
