"""Models: the browser (local catalog, collection and Hugging Face Hub search, filtered by
category and provider), the user's collection, availability checks, recommendations by use
case and info with a memory estimate per training method.

Search, checks and categories are ``tunelab.models.hub`` / ``tunelab.models.categories``;
these routes validate, call them and shape the answer. ``GET /api/models/search`` answers
the workflow guide's plain JSON list (with the Hub's part in ``X-Tunelab-Hub-*`` headers);
``GET /api/models`` answers the same results as a page with a ``hub`` field.

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
from tunelab.api.deps import AdminScope, ReadScope, ServerPaths, SessionDep, TrainScope
from tunelab.errors import NotFound, TunelabError
from tunelab.jobs.names import check_name
from tunelab.jobs.paths import admit_model_name
from tunelab.models import categories, hub
from tunelab.models.hub import Availability, HubStatus, ModelResult, SearchResult
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
    """The workflow guide's body: ``{id, name, provider, category}``; only ``id`` is required."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, description="Built-in id or Hub id (org/name).")
    name: str = Field(default="", max_length=200, description="Display name (a label).")
    provider: str = Field(default="", max_length=200, description="Who publishes it; derived from the id when empty.")
    category: str = Field(
        default="", max_length=60,
        description="One of GET /api/meta's model_categories (name or slug); derived when empty.",
    )  # fmt: skip


class ModelPage(BaseModel):
    """Models for the browser: local catalog and collection, plus Hub matches when searched."""

    data: list[ModelResult] = Field(description="Matching models.")
    count: int = Field(description="len(data).")
    hub: HubStatus = Field(description="Whether the Hub was searched and reached, and why not.")


class Recommendations(BaseModel):
    """Suggested models per use case, each with its reason."""

    use_cases: dict[str, str] = Field(description="Use case key -> what it covers.")
    recommendations: dict[str, list[categories.Recommendation]] = Field(
        description="Use case key -> suggested models, best first."
    )


def _category(value: str | None) -> str | None:
    return categories.parse_category(value) if value else None


def _query(query: str | None, q: str | None) -> str | None:
    """``query`` (the guide's name) or ``q`` (the older alias); ``query`` wins when both are given."""
    return query if query is not None else q


class TrustRemoteCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed: bool = Field(description="Allow trust_remote_code for this one model.")


QueryParam = Annotated[str | None, Query(min_length=1, max_length=200, description="Words in the model id or name.")]
AliasParam = Annotated[
    str | None, Query(min_length=1, max_length=200, description="Alias of `query` (kept for older clients).")
]
CategoryParam = Annotated[
    str | None, Query(max_length=60, description="Only this category (name or slug; GET /api/meta model_categories).")
]
ProviderParam = Annotated[
    str | None, Query(max_length=200, description="Only this provider ('Meta') or Hub organisation ('meta-llama').")
]


async def _search(session: Any, query: str | None, limit: int, category: str | None, provider: str | None,
                  use_hub: bool) -> SearchResult:  # fmt: skip
    rows = [entry.to_dict() for entry in collection.list_models(session)]
    return await run_in_threadpool(
        hub.search_models, query, limit=limit, category=_category(category), provider=provider or None,
        collection=rows, use_hub=use_hub,
    )  # fmt: skip


@router.get("", response_model=ModelPage, summary="Browse models: local catalog, collection and Hub matches")
async def list_models(
    session: SessionDep,
    _: ReadScope,
    query: QueryParam = None,
    q: AliasParam = None,
    category: CategoryParam = None,
    provider: ProviderParam = None,
    hub_search: Annotated[
        bool | None, Query(alias="hub", description="Also ask the Hub; by default only when a query is given.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    """Built-in, pulled and collection models, filtered; with ``query`` (or ``hub=true``) the Hub's too."""
    words = _query(query, q)
    use_hub = hub_search if hub_search is not None else words is not None
    found = await _search(session, words, limit, category, provider, use_hub)
    return found.model_dump(mode="json")


@router.get("/search", response_model=list[ModelResult], summary="Search the Hugging Face Hub and the local catalog")
async def search_models(
    session: SessionDep,
    _: ReadScope,
    response: Response,
    query: QueryParam = None,
    q: AliasParam = None,
    category: CategoryParam = None,
    provider: ProviderParam = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[dict[str, Any]]:
    """The guide's answer: a JSON list, Hub text-generation models by downloads, then local matches.

    Offline or when the Hub does not answer in time, the list holds local matches only and
    the headers say so: ``X-Tunelab-Hub-Reached: false`` and ``X-Tunelab-Hub-Reason``.
    ``GET /api/models?query=`` gives the same results with a ``hub`` field in the body.
    """
    found = await _search(session, _query(query, q), limit, category, provider, True)
    response.headers["X-Tunelab-Hub-Reached"] = "true" if found.hub.reached else "false"
    if found.hub.reason:
        response.headers["X-Tunelab-Hub-Reason"] = found.hub.reason.encode("ascii", "replace").decode()
    return [item.model_dump(mode="json") for item in found.data]


@router.get("/recommendations", response_model=Recommendations, summary="Suggested models by use case, with reasons")
def model_recommendations(
    _: ReadScope,
    use_case: Annotated[
        str | None,
        Query(max_length=60, description="code, instruction_following, resource_constrained or multilingual; all when absent."),
    ] = None,
) -> dict[str, Any]:
    found = categories.recommendations(use_case)
    return {
        "use_cases": {key: categories.USE_CASES[key] for key in found},
        "recommendations": {key: [r.model_dump() for r in items] for key, items in found.items()},
    }


@router.get("/check/{model_id:path}", response_model=Availability, summary="Whether a model can be used, and why")
async def check_model(model_id: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    """Built-in, in the local cache, on the Hub (gated or not), missing, or the Hub not reached.

    ``model_id`` may carry its slash encoded (``meta-llama%2FLlama-3.1-8B-Instruct``) or plain.
    """
    known = {entry.id for entry in collection.list_models(session)}
    found = await run_in_threadpool(hub.check_model, model_id, in_collection=model_id.strip() in known)
    return found.model_dump(mode="json")


@router.get("/info", summary="Facts and a memory estimate per training method for a model")
async def model_info(
    _: ReadScope,
    paths: ServerPaths,
    name: Annotated[str, Query(min_length=1, max_length=500, description="Model id, Hub id or folder.")],
    batch_size: Annotated[int, Query(**_bounds("batch_size"))] = _default("batch_size"),
    max_length: Annotated[int, Query(**_bounds("max_length"))] = _default("max_length"),
    precision: Annotated[RequestedPrecision, Query(description="Compute precision (TrainConfig's).")] = _default("precision"),
    gradient_checkpointing: bool = _default("gradient_checkpointing"),
) -> dict[str, Any]:
    """Every other setting (LoRA rank and dropout, virtual tokens, device) is TrainConfig's default."""
    info = await run_in_threadpool(catalog.model_info, admit_model_name(name, "name", paths))
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
    paths: ServerPaths,
    name: Annotated[str, Query(min_length=1, max_length=500, description="Model id, Hub id or folder.")],
) -> dict[str, Any]:
    found = await run_in_threadpool(catalog.is_available, admit_model_name(name, "name", paths))
    return {"name": name, "available": found}


@router.post("", status_code=201, summary="Add a model to the collection")
async def add_model(body: ModelAdd, session: SessionDep, _: TrainScope, paths: ServerPaths) -> dict[str, Any]:
    """Record a model with its provider and category (given, else derived).

    A Hub id that is not on disk is added with the Hub's facts when the Hub answers and
    with what its id says when it does not (offline); the Hub answering "no such model" is
    a 404. ``GET /api/models/check/{id}`` says whether the entry can be used.
    """
    check_name(body.name, "name")
    check_name(body.provider, "provider")
    category = categories.parse_category(body.category) if body.category else ""
    try:
        info, source, location = await run_in_threadpool(
            hub.collection_facts, admit_model_name(body.id.strip(), "id", paths), provider=body.provider.strip(),
            category=category,
        )
    except hub.HubNotFound as error:
        raise NotFound(
            f"The Hub has no model {body.id!r} (or it is private).",
            hint="Check the id on huggingface.co; private models need HF_TOKEN.",
        ) from error
    entry = collection.add_model(
        session, body.id.strip(), name=body.name.strip() or info["result"]["name"], source=source,
        location=location, info=info,
    )  # fmt: skip
    return _entry(entry.to_dict())


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    """A collection row with the browser's fields (provider, category, parameters...) on top."""
    return row | hub.from_collection(row).model_dump(mode="json", exclude={"source", "name", "id"})


@router.delete("/{model_id:path}", status_code=204, summary="Remove a model from the collection")
def remove_model(model_id: str, session: SessionDep, _: TrainScope) -> Response:
    collection.remove_model(session, model_id)
    return Response(status_code=204)


@router.post("/{model_id:path}/trust_remote_code", summary="Admin: allow remote code for one model")
def trust_remote_code(model_id: str, body: TrustRemoteCode, session: SessionDep, _: AdminScope) -> dict[str, Any]:
    return collection.set_trust_remote_code(session, model_id, body.allowed).to_dict()
