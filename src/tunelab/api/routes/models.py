"""Models: the catalog (built-in and pulled models), a word search over it, the user's
collection, availability and info with a memory estimate per training method.

The estimates are the method registry's (``tunelab.training.methods.estimate_methods``),
the same function preflight and ``tunelab models info`` call, with TrainConfig's
defaults for every setting not given, so the three report one number.

Names may be Hub ids with a slash (``org/name``), so they travel as query
parameters or ``{model_id:path}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from tunelab import models as catalog
from tunelab.api.deps import AdminScope, ReadScope, SessionDep, TrainScope, check_name
from tunelab.api.schemas import Page
from tunelab.errors import TunelabError
from tunelab.models.precision import RequestedPrecision
from tunelab.store import catalog as collection
from tunelab.training import methods
from tunelab.training.config import TrainConfig

router = APIRouter(prefix="/api/models", tags=["models"])


def _default(name: str) -> Any:
    return TrainConfig.model_fields[name].default


def _bounds(name: str) -> dict[str, Any]:
    """TrainConfig's range for a field, so a query outside it is a 422, not eight per-method errors."""
    out: dict[str, Any] = {}
    for rule in TrainConfig.model_fields[name].metadata:
        for key in ("ge", "le"):
            if getattr(rule, key, None) is not None:
                out[key] = getattr(rule, key)
    return out


class ModelAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, description="Catalog id, Hub id (org/name) or local folder.")
    name: str = Field(default="", max_length=200, description="Display name (a label).")


class TrustRemoteCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed: bool = Field(description="Allow trust_remote_code for this one model.")


@router.get("", response_model=Page, summary="Catalog models and the user's collection")
async def list_models(session: SessionDep, _: ReadScope) -> dict[str, Any]:
    infos = await run_in_threadpool(catalog.list_models)
    data = [info.model_dump(mode="json") | {"in_collection": False} for info in infos]
    known = {item["id"] for item in data}
    for entry in collection.list_models(session):
        row = entry.to_dict() | {"in_collection": True}
        if entry.id in known:
            data = [item | row if item["id"] == entry.id else item for item in data]
        else:
            data.append(row)
    return {"data": data, "count": len(data)}


@router.get("/search", response_model=Page, summary="Search the catalog (built-in and pulled models)")
async def search_models(
    _: ReadScope,
    q: Annotated[str, Query(min_length=1, max_length=200, description="Words in the model id or description.")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Models whose id or description contains every word of ``q``; the Hub is not searched."""
    words = q.lower().split()
    infos = await run_in_threadpool(catalog.list_models)
    data = [
        info.model_dump(mode="json")
        for info in infos
        if all(w in f"{info.id} {info.description}".lower() for w in words)
    ][:limit]
    return {"data": data, "count": len(data)}


@router.get("/info", summary="Facts and a memory estimate per training method for a model")
async def model_info(
    _: ReadScope,
    name: Annotated[str, Query(min_length=1, max_length=500, description="Model id, Hub id or folder.")],
    batch_size: Annotated[int, Query(**_bounds("batch_size"))] = _default("batch_size"),
    max_length: Annotated[int, Query(**_bounds("max_length"))] = _default("max_length"),
    precision: Annotated[RequestedPrecision, Query(description="Compute precision (TrainConfig's).")] = _default("precision"),
    gradient_checkpointing: bool = _default("gradient_checkpointing"),
) -> dict[str, Any]:
    """Every other setting (LoRA rank and dropout, virtual tokens, device) is TrainConfig's default."""
    info = await run_in_threadpool(catalog.model_info, name)
    found = await run_in_threadpool(
        methods.estimate_methods, info, batch_size=batch_size, max_length=max_length, precision=precision,
        gradient_checkpointing=gradient_checkpointing,
    )  # fmt: skip
    estimates = {
        method: {"error": value.to_dict()} if isinstance(value, TunelabError) else value.model_dump(mode="json")
        for method, value in found.items()
    }
    return {"model": info.model_dump(mode="json"), "memory": estimates}


@router.get("/available", summary="Whether a model can be used now (on disk, convertible, downloadable)")
async def model_available(
    _: ReadScope,
    name: Annotated[str, Query(min_length=1, max_length=500, description="Model id, Hub id or folder.")],
) -> dict[str, Any]:
    return {"name": name, "available": await run_in_threadpool(catalog.is_available, name)}


@router.post("", status_code=201, summary="Add a model to the collection")
async def add_model(body: ModelAdd, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    check_name(body.name, "name")
    info = await run_in_threadpool(catalog.model_info, body.id)
    entry = collection.add_model(
        session,
        body.id,
        name=body.name or body.id,
        source=info.source.value,
        location=info.path or "",
        info=info.model_dump(mode="json"),
    )
    return entry.to_dict()


@router.delete("/{model_id:path}", status_code=204, summary="Remove a model from the collection")
def remove_model(model_id: str, session: SessionDep, _: TrainScope) -> Response:
    collection.remove_model(session, model_id)
    return Response(status_code=204)


@router.post("/{model_id:path}/trust_remote_code", summary="Admin: allow remote code for one model")
def trust_remote_code(model_id: str, body: TrustRemoteCode, session: SessionDep, _: AdminScope) -> dict[str, Any]:
    return collection.set_trust_remote_code(session, model_id, body.allowed).to_dict()
