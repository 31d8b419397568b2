"""Models: catalog (built-in, pulled, Hub search when online), the user's collection,
availability and info with memory estimates per training method.

Names may be Hub ids with a slash (``org/name``), so they travel as query
parameters or ``{model_id:path}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from tunelab import models as catalog
from tunelab.api.deps import AdminScope, ReadScope, SessionDep, SettingsDep, TrainScope, check_name
from tunelab.api.schemas import Page
from tunelab.errors import TunelabError
from tunelab.store import catalog as collection

router = APIRouter(prefix="/api/models", tags=["models"])
METHODS = ("full", "lora", "qlora")


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


@router.get("/search", response_model=Page, summary="Search the local catalog (and the Hub when online)")
async def search_models(
    settings: SettingsDep,
    _: ReadScope,
    q: Annotated[str, Query(min_length=1, max_length=200, description="Words in the model id.")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    search = getattr(catalog, "search_models", None)
    if search is not None:
        found = await run_in_threadpool(search, q, limit=limit)
        data = [item if isinstance(item, dict) else item.model_dump(mode="json") for item in found]
        return {"data": data, "count": len(data)}
    words = q.lower().split()
    infos = await run_in_threadpool(catalog.list_models)
    data = [
        info.model_dump(mode="json")
        for info in infos
        if all(w in f"{info.id} {info.description}".lower() for w in words)
    ][:limit]
    return {"data": data, "count": len(data)}


@router.get("/info", summary="Facts and memory estimates for a model")
async def model_info(
    _: ReadScope,
    name: Annotated[str, Query(min_length=1, max_length=500, description="Model id, Hub id or folder.")],
    batch_size: Annotated[int, Query(ge=1, le=4096)] = 8,
    max_length: Annotated[int, Query(ge=1, le=1_000_000)] = 512,
) -> dict[str, Any]:
    info = await run_in_threadpool(catalog.model_info, name)
    estimates: dict[str, Any] = {}
    for method in METHODS:
        try:
            estimate = catalog.estimate_memory(info, method, batch_size, max_length)  # type: ignore[arg-type]
            estimates[method] = estimate.model_dump(mode="json")
        except TunelabError as error:
            estimates[method] = {"error": error.to_dict()}
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
