"""The Hugging Face Hub as a model source: search, model facts and availability.

Search asks the Hub (``huggingface_hub.HfApi``) for text-generation models sorted by
downloads and merges them with what is on this machine (built-in and pulled models and
the user's collection). The Hub is optional: offline (``TUNELAB_OFFLINE``,
``HF_HUB_OFFLINE``) or when it does not answer within ``hub_timeout_s``, search answers
the local results and a ``HubStatus`` that says why the Hub was not reached, and never
fails.

Why the care with time: ``HfApi.list_models`` retries connection errors for about 20 s
and its HTTP client has no timeout, so every Hub call runs in a daemon thread that we
wait on for at most ``hub_timeout_s``; after a failure the endpoint is skipped for
``hub_retry_s`` so a dashboard typing a search does not wait on a dead network for
every key. The endpoint is ``TUNELAB_HUB_ENDPOINT``, else ``HF_ENDPOINT`` read *now*
(``huggingface_hub.constants.ENDPOINT`` is read once at import), passed to ``HfApi`` as
``endpoint=``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from tunelab.models.catalog import BUILTIN_MODELS, ModelInfo, is_hub_id, task_from_pipeline
from tunelab.models.categories import (
    categorize,
    display_name,
    matches_provider,
    parameters_from_name,
    parameters_text,
    provider_for,
    provider_orgs,
    summary,
)
from tunelab.settings import get_settings

_TRUE = {"1", "true", "yes", "on"}
# Bytes per value of each safetensors dtype (the Hub reports parameter counts per dtype).
_DTYPE_BYTES = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "U32": 4, "BF16": 2, "F16": 2, "I16": 2,
                "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}  # fmt: skip
_LOCAL_DTYPE_BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}
# What a search asks the Hub to include per model (the list endpoint's ``expand``).
_EXPAND = ["author", "downloads", "likes", "pipeline_tag", "tags", "gated", "safetensors", "cardData", "library_name"]

T = TypeVar("T")


class HubStatus(BaseModel):
    """Whether the Hub took part in an answer, and why not when it did not."""

    searched: bool = Field(description="The Hub was asked (false when nothing needed it).")
    reached: bool = Field(description="The Hub answered.")
    reason: str = Field(default="", description="Why the Hub was not reached; empty when it was.")
    endpoint: str = Field(description="The Hub address used (TUNELAB_HUB_ENDPOINT, HF_ENDPOINT or huggingface.co).")


class ModelResult(BaseModel):
    """One model as the browser, search and collection show it."""

    id: str = Field(description="Hub id (org/name) or built-in id; what POST /api/models and jobs take.")
    name: str = Field(description="Display name, e.g. 'Llama 3.1 8B Instruct'.")
    provider: str = Field(description="Who publishes it ('Meta'), else the Hub organisation.")
    category: str = Field(description="One of GET /api/meta's model_categories.")
    parameters: str | None = Field(default=None, description="Size as text: '8B', '1.1B', '135M'.")
    parameter_count: int | None = Field(default=None, ge=0, description="Size as a number of parameters.")
    downloads: int | None = Field(default=None, ge=0, description="Hub downloads (last 30 days); null for local-only models.")
    likes: int | None = Field(default=None, ge=0, description="Hub likes; null for local-only models.")
    description: str = Field(default="", description="One line for listings.")
    license: str | None = Field(default=None, description="Licence id from the model card, e.g. apache-2.0.")
    size_bytes: int | None = Field(
        default=None, ge=0,
        description="Weights size in bytes: the Hub's safetensors counts times each dtype's width, or "
        "parameters times the stored dtype for local models.",
    )  # fmt: skip
    pipeline_tag: str | None = Field(default=None, description="The Hub's task tag, e.g. text-generation.")
    task: str | None = Field(
        default=None, description="Model family, what `task: auto` trains it as (causal_lm, seq2seq, classification, "
        "regression): from config.json for local models, the pipeline tag for Hub results; null when unknown.",
    )  # fmt: skip
    gated: bool = Field(default=False, description="The Hub requires accepting a licence (and HF_TOKEN) to download.")
    source: Literal["hub", "builtin", "pulled", "collection"] = Field(
        description="Where this entry came from: the Hub, tunelab's built-in model, a pulled model, or only the collection."
    )
    available: bool = Field(default=False, description="Usable now without the network (built-in or on disk).")
    in_collection: bool = Field(default=False, description="In the user's collection (POST /api/models).")


class SearchResult(BaseModel):
    """Models matching a search, Hub results by downloads first, and the Hub's part in it."""

    data: list[ModelResult] = Field(description="Matching models.")
    count: int = Field(description="len(data).")
    hub: HubStatus = Field(description="Whether the Hub was searched and reached.")


class Availability(BaseModel):
    """Whether a model can be used, and why (``GET /api/models/check/{id}``)."""

    id: str = Field(description="The id asked about.")
    available: bool = Field(description="A job or chat can use it now (on disk, convertible, or downloadable).")
    status: Literal["builtin", "downloaded", "on_hub", "gated", "not_found", "offline", "unreachable"] = Field(
        description="builtin (ships with tunelab), downloaded (in the local cache), on_hub (downloadable), "
        "gated (needs an accepted licence and HF_TOKEN), not_found, offline, unreachable (the Hub did not answer)."
    )
    reason: str = Field(description="The answer as a sentence.")
    hint: str = Field(default="", description="What to do next, when something is missing.")
    hub: HubStatus = Field(description="Whether the Hub was asked and answered.")
    model: ModelResult | None = Field(default=None, description="What is known about the model, when anything is.")
    in_collection: bool = Field(default=False, description="In the user's collection.")


class HubUnreached(Exception):
    """The Hub could not be asked or did not answer; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HubNotFound(Exception):
    """The Hub answered that there is no such model (or it is private)."""


# endpoint -> (monotonic time until which it is skipped, why)
_DOWN: dict[str, tuple[float, str]] = {}
_DOWN_LOCK = threading.Lock()


def hub_endpoint() -> str:
    """The Hub address: TUNELAB_HUB_ENDPOINT, else HF_ENDPOINT as set now, else huggingface_hub's."""
    configured = get_settings().hub_endpoint or os.environ.get("HF_ENDPOINT", "")
    if configured:
        return configured.rstrip("/")
    from huggingface_hub import constants

    return str(constants.ENDPOINT).rstrip("/")


def offline_reason() -> str | None:
    """Why tunelab must not contact the Hub now, or None when it may."""
    if get_settings().offline:
        return "tunelab is offline (TUNELAB_OFFLINE is set)"
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return f"tunelab is offline ({name} is set)"
    from huggingface_hub import constants

    # huggingface_hub 1.x asks a function; 0.x only has the flag read at import time.
    is_offline = getattr(constants, "is_offline_mode", None)
    if is_offline() if is_offline else constants.HF_HUB_OFFLINE:
        return "huggingface_hub is in offline mode (HF_HUB_OFFLINE was set when the server started)"
    return None


def _status(searched: bool, reason: str = "") -> HubStatus:
    return HubStatus(searched=searched, reached=searched and not reason, reason=reason, endpoint=hub_endpoint())


def _with_deadline(call: Callable[[], T], timeout_s: float) -> T:
    """``call()`` in a daemon thread; HubUnreached when it takes longer than ``timeout_s``.

    A thread left behind finishes (or gives up) on its own and never blocks shutdown.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # handed to the caller below
            box["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name="tunelab-hub", daemon=True).start()
    if not done.wait(timeout_s):
        raise HubUnreached(f"no answer from {hub_endpoint()} within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _hub_call(call: Callable[[Any], T]) -> T:
    """Run ``call(HfApi)`` against the Hub with the deadline and the skip-after-failure rule.

    Raises HubUnreached (offline, skipped, timed out, network or server error) or HubNotFound.
    """
    reason = offline_reason()
    if reason:
        raise HubUnreached(reason)
    endpoint = hub_endpoint()
    with _DOWN_LOCK:
        until, why = _DOWN.get(endpoint, (0.0, ""))
    if time.monotonic() < until:
        raise HubUnreached(f"{why} (not retried for {until - time.monotonic():.0f} s more)")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    settings = get_settings()
    api = HfApi(endpoint=endpoint, library_name="tunelab")
    try:
        result = _with_deadline(lambda: call(api), settings.hub_timeout_s)
    except GatedRepoError:
        raise
    except RepositoryNotFoundError as error:
        raise HubNotFound(str(error).splitlines()[0]) from error
    except OfflineModeIsEnabled as error:
        raise HubUnreached("huggingface_hub is in offline mode (HF_HUB_OFFLINE was set when the server started)") from error
    except Exception as error:  # timeout, network, server or client errors: all mean "not reached"
        if isinstance(error, HubUnreached):
            why = error.reason
        elif isinstance(error, HfHubHTTPError) and error.response is not None:
            why = f"{endpoint} answered HTTP {error.response.status_code}"
        else:
            why = f"cannot reach {endpoint}: {type(error).__name__}: {error}".rstrip(": ")
        with _DOWN_LOCK:
            _DOWN[endpoint] = (time.monotonic() + settings.hub_retry_s, why)
        raise HubUnreached(why) from error
    with _DOWN_LOCK:
        _DOWN.pop(endpoint, None)
    return result


def _card(info: Any) -> Mapping[str, Any]:
    card = getattr(info, "card_data", None)
    if card is None:
        return {}
    return card.to_dict() if hasattr(card, "to_dict") else dict(card)


def from_hub(info: Any) -> ModelResult:
    """A ModelResult from a ``huggingface_hub.ModelInfo`` (list or model-info answer)."""
    tags = list(info.tags or [])
    safetensors = getattr(info, "safetensors", None)
    count = safetensors.total if safetensors is not None else None
    size = sum(n * _DTYPE_BYTES.get(dtype, 2) for dtype, n in safetensors.parameters.items()) if safetensors else None
    count = count or parameters_from_name(info.id)
    card = _card(info)
    license_ = card.get("license") or next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
    category = categorize(info.id, pipeline_tag=info.pipeline_tag, tags=tags, parameter_count=count)
    provider = provider_for(info.id, getattr(info, "author", None))
    gated = bool(info.gated)
    size_text = parameters_text(count)
    description = card.get("description") or summary(category, size_text, provider)
    if gated:
        description += "; gated: accept the licence on the Hub and set HF_TOKEN"
    return ModelResult(
        id=info.id, name=display_name(info.id), provider=provider, category=category,
        parameters=size_text, parameter_count=count, downloads=info.downloads, likes=info.likes,
        description=description, license=license_ if isinstance(license_, str) else None, size_bytes=size,
        pipeline_tag=info.pipeline_tag, task=task_from_pipeline(info.pipeline_tag), gated=gated, source="hub",
    )  # fmt: skip


def from_local(info: ModelInfo, *, source: Literal["builtin", "pulled"]) -> ModelResult:
    """A ModelResult for a model tunelab has on this machine (built-in or pulled)."""
    model_id = info.hub_id or info.id
    count = info.parameters or parameters_from_name(model_id)
    width = _LOCAL_DTYPE_BYTES.get(info.dtype or "", 2)
    return ModelResult(
        id=info.id, name=display_name(model_id), provider=provider_for(model_id),
        category=categorize(model_id, parameter_count=count), parameters=parameters_text(count),
        parameter_count=count, description=info.description, license=info.licence,
        size_bytes=count * width if count else None, source=source, available=info.available, task=info.task,
    )  # fmt: skip


def from_collection(entry: Mapping[str, Any]) -> ModelResult:
    """A ModelResult from a collection row (``ModelEntry.to_dict()``), its stored facts first."""
    info = dict(entry.get("info") or {})
    stored = info.get("result") or {}
    count = stored.get("parameter_count") or (info.get("parameters") if isinstance(info.get("parameters"), int) else None)
    count = count or parameters_from_name(entry["id"])
    base: dict[str, Any] = {
        "id": entry["id"], "name": entry.get("name") or display_name(entry["id"]),
        "provider": provider_for(entry["id"]), "category": categorize(entry["id"], parameter_count=count),
        "parameters": parameters_text(count), "parameter_count": count,
        "description": info.get("description", ""), "license": info.get("licence"), "task": info.get("task"),
    }  # fmt: skip
    fields = set(ModelResult.model_fields) - {"source", "in_collection", "available", "name"}
    base |= {k: v for k, v in stored.items() if k in fields and v is not None}
    base |= {k: info[k] for k in ("provider", "category") if info.get(k)}
    return ModelResult(**base, source="collection", in_collection=True, available=bool(info.get("available")))


def local_models(collection: Iterable[Mapping[str, Any]] = ()) -> list[ModelResult]:
    """Built-in and pulled models, then collection entries that are neither; collection marks applied."""
    from tunelab.models.resolve import list_models

    rows = list(collection)
    by_id = {row["id"]: row for row in rows}
    out: list[ModelResult] = []
    for info in list_models():
        result = from_local(info, source="builtin" if info.id in BUILTIN_MODELS else "pulled")
        if result.id in by_id:
            chosen = from_collection(by_id.pop(result.id))
            result = result.model_copy(update={"in_collection": True, "name": chosen.name,
                                               "provider": chosen.provider, "category": chosen.category})  # fmt: skip
        out.append(result)
    out.extend(from_collection(row) for row in rows if row["id"] in by_id)
    return out


def _matches(result: ModelResult, words: list[str], extra: str = "") -> bool:
    text = f"{result.id} {result.name} {result.description} {result.provider} {result.category} {extra}".lower()
    return all(word in text for word in words)


def _hub_key(model_id: str) -> str:
    """The Hub id a local model stands for (a built-in's source repository), else the id itself."""
    builtin = BUILTIN_MODELS.get(model_id)
    return (builtin.hub_id or model_id) if builtin is not None else model_id


def _hub_filter(category: str | None) -> str:
    return "image-text-to-text" if category == "Multimodal" else "text-generation"


def search_hub(query: str | None, limit: int, *, category: str | None = None, provider: str | None = None) -> list[ModelResult]:
    """Models on the Hub, by downloads; raises HubUnreached. Category and provider filter the answer."""
    orgs = provider_orgs(provider) if provider else [None]
    # The Hub knows nothing of our categories, so ask for more and keep the matching ones.
    ask = min(100, limit * 4) if category else limit

    def call(api: Any) -> list[Any]:
        found: list[Any] = []
        for org in orgs[:3]:
            found += list(api.list_models(search=query or None, author=org, filter=_hub_filter(category),
                                          sort="downloads", limit=ask, expand=_EXPAND))  # fmt: skip
        return found

    results = [from_hub(info) for info in _hub_call(call)]
    results.sort(key=lambda r: r.downloads or 0, reverse=True)
    return [r for r in results if category is None or r.category == category][:limit]


def search_models(
    query: str | None = None,
    *,
    limit: int = 20,
    category: str | None = None,
    provider: str | None = None,
    collection: Iterable[Mapping[str, Any]] = (),
    use_hub: bool = True,
) -> SearchResult:
    """The Hub's matches (by downloads) merged with local ones; never raises for the Hub's sake.

    A Hub result that is also local is marked ``available`` / ``in_collection`` (a
    built-in's Hub repository shows as the built-in, with the Hub's counts); local models
    the Hub did not return follow. ``limit`` bounds the whole answer.
    """
    from tunelab.models.resolve import list_models

    words = (query or "").lower().split()
    # Architecture, model type and Hub id are searchable locally too ("llama" finds SmolLM2).
    local_text = {i.id: f"{i.architecture or ''} {i.model_type or ''} {i.hub_id or ''}" for i in list_models()}
    local = [
        r for r in local_models(collection)
        if _matches(r, words, local_text.get(r.id, ""))
        and (category is None or r.category == category)
        and (provider is None or matches_provider(provider, _hub_key(r.id), r.provider))
    ]  # fmt: skip
    hub_results: list[ModelResult] = []
    status = _status(False)
    if use_hub:
        try:
            hub_results = search_hub(query, limit, category=category, provider=provider)
            status = _status(True)
        except HubUnreached as error:
            status = _status(True, error.reason)
    by_hub_id = {_hub_key(r.id): r for r in local}
    merged: list[ModelResult] = []
    for result in hub_results:
        mine = by_hub_id.pop(result.id, None)
        if mine is not None and mine.id != result.id:  # a built-in: its own id works offline; the Hub adds counts
            result = mine.model_copy(update=result.model_dump(include={"downloads", "likes", "pipeline_tag", "gated"}))
        elif mine is not None:
            result = result.model_copy(update={"available": mine.available, "in_collection": mine.in_collection})
        merged.append(result)
    merged += [r for r in local if r in by_hub_id.values()]
    merged = merged[:limit]
    return SearchResult(data=merged, count=len(merged), hub=status)


def describe(model_id: str) -> tuple[ModelResult | None, HubStatus]:
    """The Hub's facts about one model, or None with the reason the Hub could not give them.

    Raises HubNotFound when the Hub answered that the model does not exist.
    """
    from huggingface_hub.errors import GatedRepoError

    timeout = get_settings().hub_timeout_s
    try:
        info = _hub_call(lambda api: api.model_info(model_id, timeout=timeout, expand=_EXPAND))
    except GatedRepoError:
        return None, _status(True)
    except HubUnreached as error:
        return None, _status(True, error.reason)
    return from_hub(info), _status(True)


def check_model(model_id: str, *, in_collection: bool = False) -> Availability:
    """Whether ``model_id`` can be used now and why: built-in, local cache, Hub (reachable, gated, missing)."""
    found = _check(model_id.strip(), in_collection)
    if found.model is not None:
        found.model.in_collection = in_collection
    return found


def _check(name: str, in_collection: bool) -> Availability:
    from tunelab.models.builtin import cache_dir, gguf_file, is_complete
    from tunelab.models.resolve import _hf_cached_snapshot, hub_dir

    mark = {"in_collection": in_collection}
    if name in BUILTIN_MODELS:
        from tunelab.models.resolve import model_info

        info = model_info(name)  # static facts plus whether it is on disk; never converts
        ready = is_complete(cache_dir(name))
        convertible = gguf_file(name) is not None
        how = "converted and cached" if ready else "converted from its packaged GGUF on first use" if convertible else "downloaded on first use"
        return Availability(
            id=name, available=ready or convertible or offline_reason() is None, status="builtin",
            reason=f"{name} is tunelab's built-in model ({how}).", hub=_status(False),
            model=from_local(info, source="builtin"), **mark,
        )  # fmt: skip
    if not is_hub_id(name):
        return Availability(
            id=name, available=False, status="not_found", hub=_status(False),
            reason=f"{name!r} is neither a built-in id nor a Hub id (org/name).",
            hint=f"Use a built-in id ({', '.join(BUILTIN_MODELS)}) or a Hub id such as HuggingFaceTB/SmolLM2-360M-Instruct.",
            **mark,
        )  # fmt: skip
    local = hub_dir(name) if is_complete(hub_dir(name)) else _hf_cached_snapshot(name)
    if local is not None:
        return Availability(
            id=name, available=True, status="downloaded", hub=_status(False),
            reason=f"{name} is in the local model cache ({local}).", **mark,
        )  # fmt: skip
    try:
        model, hub = describe(name)
    except HubNotFound:
        return Availability(
            id=name, available=False, status="not_found", hub=_status(True),
            reason=f"The Hub at {hub_endpoint()} has no model {name!r} (or it is private).",
            hint="Check the spelling on huggingface.co; a private model needs HF_TOKEN.", **mark,
        )  # fmt: skip
    if not hub.reached:
        offline = offline_reason()
        return Availability(
            id=name, available=False, status="offline" if offline else "unreachable", hub=hub,
            reason=f"{name} is not on this machine and the Hub was not reached: {hub.reason}.",
            hint=f"Run `tunelab models pull {name}` while online, or unset TUNELAB_OFFLINE / HF_HUB_OFFLINE."
            if offline else "Check the network (or HF_ENDPOINT) and try again.",
            **mark,
        )  # fmt: skip
    if model is None or model.gated:
        token = bool(os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"))
        return Availability(
            id=name, available=token, status="gated", hub=hub, model=model,
            reason=f"{name} is gated on the Hub: downloading it needs an accepted licence"
            + (" and HF_TOKEN is set." if token else " and HF_TOKEN, which is not set."),
            hint=f"Accept the licence on the model's Hub page, set HF_TOKEN, then `tunelab models pull {name}`.",
            **mark,
        )  # fmt: skip
    return Availability(
        id=name, available=True, status="on_hub", hub=hub, model=model,
        reason=f"{name} is on the Hub ({model.downloads or 0} downloads) and downloads on first use.",
        hint=f"`tunelab models pull {name}` downloads it ahead of time.", **mark,
    )  # fmt: skip


def collection_facts(model_id: str, *, provider: str = "", category: str = "") -> tuple[dict[str, Any], str, str]:
    """What to store for a collection entry: ``(info, source, location)``.

    Local models (built-in, a pulled Hub id) keep their catalog facts; a Hub id not on
    disk gets the Hub's facts when the Hub answers, and is still added when it does not
    (a collection entry is a bookmark; the check route says whether it can be used).
    Raises HubNotFound when the Hub answered that the model does not exist, and the
    catalog's NotFound for a name that is neither built-in nor a Hub id.
    """
    from tunelab.models.builtin import is_complete
    from tunelab.models.resolve import _hf_cached_snapshot, hub_dir, model_info

    name = model_id.strip()
    on_disk = name in BUILTIN_MODELS or not is_hub_id(name) or is_complete(hub_dir(name)) or _hf_cached_snapshot(name) is not None
    info: dict[str, Any]
    if on_disk:
        local = model_info(name)  # NotFound for an unknown non-Hub name
        source = "builtin" if name in BUILTIN_MODELS else local.source.value
        result = from_local(local, source="builtin" if name in BUILTIN_MODELS else "pulled")
        info, location = local.model_dump(mode="json"), local.path or ""
    else:
        found, hub = describe(name)
        source, location = "hub", ""
        info = {"hub": hub.model_dump()}
        result = found
        if result is None:  # the Hub did not answer (or hid a gated model's facts): what the id says
            count = parameters_from_name(name)
            result = ModelResult(
                id=name, name=display_name(name), provider=provider_for(name),
                category=categorize(name, parameter_count=count), parameters=parameters_text(count),
                parameter_count=count, source="hub",
            )  # fmt: skip
            result.description = summary(result.category, result.parameters, result.provider)
    info["result"] = result.model_dump(mode="json")
    info["provider"] = provider or result.provider
    info["category"] = category or result.category
    return info, source, location
