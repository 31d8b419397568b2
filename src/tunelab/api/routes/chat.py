"""Serve base and tuned models: OpenAI's chat and text completions, ``/v1/models``, and ``/generate``.

Shapes follow OpenAI's API, so the official ``openai`` client (and tools built
on it) can talk to a tuned model: ``model`` is a collection entry (tuned models
as ``ft:<base>:<name>:<job id>``), a completed job's id or a built-in id, or,
under ``tunelab serve-model``, one of the names its command line gave.
``stream: true`` answers with server-sent event chunks ending in ``data: [DONE]``.
``/generate`` is the users' guide's local deployment (``{prompt, max_length}``
to ``{response}``).

Every request is a row of its base model's batch (``serving.batching``): the
route checks the limits, submits one row per choice and reads the rows back,
streaming or whole.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from tunelab.api.deps import ReadScope, SessionDep, SettingsDep
from tunelab.api.errors import ErrorBody
from tunelab.api.schemas import MAX_ID
from tunelab.errors import InvalidInput
from tunelab.models.generation import Completion, Sampling
from tunelab.serving import experiments
from tunelab.serving.batching import Handle
from tunelab.serving.generation import ChatModel, check_max_tokens, check_prompt_size
from tunelab.serving.registry import ChatTicket, LoadedModels, chat_location, chat_model_ids
from tunelab.settings import Settings

T = TypeVar("T")

router = APIRouter(prefix="/v1", tags=["openai-compatible"])
generate_router = APIRouter(tags=["serving"])


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def as_turn(self) -> dict[str, str]:
        content = self.content
        if isinstance(content, list):  # text parts, as the openai client may send them
            content = "".join(str(p.get("text", "")) for p in content if p.get("type", "text") == "text")
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": content or ""}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = Field(default=False, description="Send a last chunk with `usage` before [DONE].")


class SamplingFields(BaseModel):
    """What every generation route takes: OpenAI's names, one ``Sampling`` per choice."""

    model_config = ConfigDict(extra="ignore")

    max_tokens: int | None = Field(default=None, ge=1, le=MAX_ID, description="Reply length limit in tokens "
                                   "(at most TUNELAB_CHAT_MAX_TOKENS, 8192 by default: more is a 400).")  # fmt: skip
    temperature: float = Field(default=0.7, ge=0.0, le=2.0, description="0 is greedy decoding.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int | None = Field(default=None, ge=0, le=1_000_000, description="Sample among the k likeliest tokens.")
    seed: int | None = Field(default=None, ge=0, le=MAX_ID, description="Same seed, same reply.")
    stop: str | list[str] | None = Field(default=None, description="Up to 4 strings that end the reply.")
    n: int = Field(default=1, ge=1, le=8, description="Choices to generate (seeded: seed, seed+1, ...).")
    stream: bool = Field(default=False, description="Send the reply as server-sent event chunks.")
    stream_options: StreamOptions | None = Field(default=None, description="`include_usage` when streaming.")
    user: str | None = Field(default=None, max_length=200, description="Who asks: an experiment (`exp:NAME`) "
                             "routes the same user to the same variant.")  # fmt: skip

    def sampling(self, max_new_tokens: int, choice: int) -> Sampling:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        seed = None if self.seed is None else self.seed + choice
        return Sampling(max_new_tokens=max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                        top_k=self.top_k or None, seed=seed, stop=stop)  # fmt: skip


class ChatCompletionRequest(SamplingFields):
    model: str = Field(min_length=1, description="Collection entry (ft:<base>:<name>:<job id>), job id or built-in id.")
    messages: list[ChatMessage] = Field(min_length=1, description="The conversation so far.")
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_ID, description="Alias of max_tokens.")


class CompletionRequest(SamplingFields):
    model: str = Field(min_length=1, description="Collection entry (ft:<base>:<name>:<job id>), job id or built-in id.")
    prompt: str | list[str] = Field(description="Text to continue, as is (no chat template); or up to 16 texts.")
    temperature: float = Field(default=1.0, ge=0.0, le=2.0, description="0 is greedy decoding.")


class GenerateRequest(BaseModel):
    """The users' guide's local deployment body."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(description="The user's text; rendered with the model's chat template unless `raw`.")
    max_length: int = Field(default=200, ge=1, le=MAX_ID, description="Prompt plus reply, in tokens (as "
                            "transformers' `max_length`).")  # fmt: skip
    model: str | None = Field(default=None, description="Which model; serve-model's default is its first adapter.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 (the default) is greedy decoding.")
    raw: bool = Field(default=False, description="Continue the prompt as is, without the chat template.")


def _models(request: Request) -> LoadedModels:
    """The app's loaded models (made on first use, with the settings' limits)."""
    state = request.app.state
    if not hasattr(state, "chat_models"):
        settings = state.settings
        state.chat_models = LoadedModels(capacity=1, queue_size=settings.chat_queue_size,
                                         max_adapters=settings.serve_max_adapters,
                                         max_batch=settings.serve_max_batch)  # fmt: skip
    models: LoadedModels = state.chat_models
    return models


async def _location(request: Request, session: Session, settings: Settings, name: str) -> str:
    """What a model name means here: serve-model's own table, else the studio's names."""
    served = getattr(request.app.state, "served", None)
    if served is not None:
        return str(served.location(name))
    return await run_in_threadpool(chat_location, session, settings, name)


async def _cancel_when_gone(request: Request, ticket: ChatTicket) -> None:
    """Set the ticket's cancel flag as soon as the client disconnects (non-streaming requests)."""
    while not ticket.cancel.is_set():
        if await request.is_disconnected():
            ticket.cancel.set()
            return
        await asyncio.sleep(0.2)


async def _watching(request: Request, ticket: ChatTicket, work: Callable[[], T]) -> T:
    """Run ``work`` in a thread while watching for the client leaving (then ``ticket.cancel`` is set)."""
    watcher = asyncio.create_task(_cancel_when_gone(request, ticket))
    try:
        return await run_in_threadpool(work)
    finally:
        watcher.cancel()


async def _start(request: Request, name: str, prompts: Callable[[ChatModel], list[tuple[str, int]]],
                 body: SamplingFields, session: Session, settings: Settings) -> tuple[ChatTicket, list[Handle]]:  # fmt: skip
    """Find and load the model, fit each (prompt, reply length) to its limits, submit ``n`` rows per prompt."""
    body.sampling(1, 0).check()  # a bad `stop` is a 422 before any model loads
    location = await _location(request, session, settings, name)
    ticket = _models(request).enter(location)  # 503 at once when the queue is full
    try:
        chat = await _watching(request, ticket, ticket.wait)  # load errors answer with their status

        def submit() -> list[Handle]:
            handles = []
            for text, requested in prompts(chat):
                limit = chat.fit_text(text, requested, settings.chat_max_prompt_tokens)
                handles += [chat.submit(text, body.sampling(limit, i), cancel=ticket.cancel) for i in range(body.n)]
            return handles

        return ticket, await run_in_threadpool(submit)
    except BaseException:
        ticket.cancel.set()
        ticket.close()
        raise


async def _results(request: Request, ticket: ChatTicket, handles: list[Handle]) -> list[Completion]:
    try:
        return await _watching(request, ticket, lambda: [handle.result() for handle in handles])
    finally:
        ticket.cancel.set()  # rows of a request that failed half-way leave the batch too
        ticket.close()


def _usage(done: list[Completion], n: int) -> dict[str, int]:
    prompt = sum(c.prompt_tokens for c in done[::n])
    completion = sum(c.completion_tokens for c in done)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _event(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body)}\n\n"


async def _follow(ticket: ChatTicket, handles: list[Handle], chunk: Callable[[int, str | None, str | None], dict[str, Any]],
                  usage: Callable[[list[Completion]], dict[str, Any]] | None,
                  on_done: Callable[[list[Completion]], Any] | None = None) -> AsyncIterator[str]:  # fmt: skip
    """Every choice's pieces as chunks as they come; a client that leaves cancels the rows at the next step.

    The rows are polled between short sleeps instead of each holding a thread,
    so sixteen open streams cost no more threads than one. Starlette cancels
    this generator when the client disconnects; the ``finally`` sets the
    cancel flag, which takes the rows out of the batch before its next step.
    """
    try:
        running = set(range(len(handles)))
        while running:
            moved = False
            for index in sorted(running):
                for item in handles[index].drain():
                    moved = True
                    if isinstance(item, BaseException):
                        raise item
                    if isinstance(item, Completion):
                        yield _event(chunk(index, None, item.finish_reason))
                        running.discard(index)
                    else:
                        yield _event(chunk(index, item, None))
            if not moved:
                await asyncio.sleep(0.005)
        if usage is not None:
            yield _event(usage([h.completion for h in handles if h.completion is not None]))
        if on_done is not None:
            await on_done([h.completion for h in handles if h.completion is not None])
        yield "data: [DONE]\n\n"
    except Exception as exc:  # headers are sent: say it in the stream instead of dropping the connection
        from tunelab.errors import TunelabError

        error = exc.to_dict() if isinstance(exc, TunelabError) else {
            "code": "internal_error", "message": f"generation failed: {type(exc).__name__}", "hint": "see the server log"}  # fmt: skip
        yield _event({"error": error})
    finally:
        ticket.cancel.set()
        ticket.close()


async def _route(request: Request, session: Session, model: str,
                 user: str | None) -> tuple[experiments.Assignment | None, str]:  # fmt: skip
    """``exp:<name>``: the variant this request goes to (``serving.experiments``) and its model; else the name."""
    name = experiments.experiment_name(model)
    if name is None:
        return None, model
    if getattr(request.app.state, "served", None) is not None:
        raise InvalidInput("experiments are served by the studio (`tunelab serve`), not by serve-model",
                           "name one of this server's models (GET /v1/models)")  # fmt: skip
    routed = await run_in_threadpool(experiments.assign, session, name, user)
    return routed, routed.model


def _routed_head(head: dict[str, Any], routed: experiments.Assignment | None) -> dict[str, Any]:
    """An experiment's answer names the variant's model, and the experiment and variant beside it."""
    if routed is None:
        return head
    return {**head, "model": routed.model, "experiment": {"name": routed.experiment, "variant": routed.variant}}


def _variant_headers(routed: experiments.Assignment | None) -> dict[str, str]:
    return {} if routed is None else {"X-Tunelab-Experiment": routed.experiment, "X-Tunelab-Variant": routed.variant}


def _recorder(request: Request, routed: experiments.Assignment | None, response_id: str, user: str | None,
              started: float, n: int) -> Callable[[list[Completion]], Any] | None:  # fmt: skip
    """What keeps an experiment's request once its reply is done (a session of its own: streams outlive the route's)."""
    if routed is None:
        return None

    async def save(done: list[Completion]) -> None:
        usage, latency = _usage(done, n), time.monotonic() - started

        def write() -> None:
            with request.app.state.sessions() as session:
                experiments.record(session, routed, response_id, user=user, latency_s=latency,
                                   prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"])  # fmt: skip

        await run_in_threadpool(write)

    return save


@router.get("/models", summary="Models you can chat with (OpenAI shape)")
async def list_chat_models(request: Request, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    served = getattr(request.app.state, "served", None)
    names = served.ids() if served is not None else await run_in_threadpool(chat_model_ids, session)
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "tunelab"} for n in names]}


_LIMITS = {
    400: {"model": ErrorBody, "description": "The prompt is longer than the model's context or the server's cap, "
                                              "or `max_tokens` is beyond the server's cap (the numbers in `details`)."},
    503: {"model": ErrorBody, "description": "The model's queue is full (or the store is busy); retry after "
                                              "`Retry-After` seconds."},
}


@router.post("/chat/completions", summary="Reply to a conversation (OpenAI shape; stream with SSE)", response_model=None,
             responses=_LIMITS)  # fmt: skip
async def chat_completions(
    body: ChatCompletionRequest, request: Request, response: Response, session: SessionDep, settings: SettingsDep,
    _: ReadScope,
) -> dict[str, Any] | StreamingResponse:
    """Bounded work: the prompt is checked against the model's context and the server's cap, and
    ``max_tokens`` against ``TUNELAB_CHAT_MAX_TOKENS`` (400 with the numbers); the reply is capped by the
    context left, at most ``chat_queue_size`` requests per model run or wait (503 beyond), and a row
    leaves the batch when its client leaves or the server stops.
    """
    turns = [message.as_turn() for message in body.messages]
    if turns[-1]["role"] == "assistant":
        raise InvalidInput("the last message is the assistant's", "end the conversation with a user message")
    check_prompt_size(turns, settings.chat_max_prompt_tokens)  # a 1 MB prompt: 400 before anything loads
    requested = body.max_completion_tokens or body.max_tokens or 256
    check_max_tokens(requested, settings.chat_max_tokens)
    routed, model = await _route(request, session, body.model, body.user)
    started = time.monotonic()
    ticket, handles = await _start(request, model, lambda chat: [(chat.render(turns), requested)], body,
                                   session, settings)  # fmt: skip
    reply_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    head = _routed_head({"id": reply_id, "created": created, "model": body.model}, routed)
    recorder = _recorder(request, routed, reply_id, body.user, started, body.n)
    if body.stream:
        started: set[int] = set()

        def chunk(index: int, piece: str | None, finish: str | None) -> dict[str, Any]:
            delta = {} if piece is None else {"content": piece}
            if index not in started:
                started.add(index)
                delta = {"role": "assistant", **delta}
            return {**head, "object": "chat.completion.chunk",
                    "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}  # fmt: skip

        usage = _stream_usage(head, "chat.completion.chunk", body)
        return StreamingResponse(_follow(ticket, handles, chunk, usage, recorder), media_type="text/event-stream",
                                 headers=_variant_headers(routed))  # fmt: skip
    done = await _results(request, ticket, handles)
    if recorder is not None:
        await recorder(done)
    response.headers.update(_variant_headers(routed))
    choices = [{"index": i, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason}
               for i, c in enumerate(done)]  # fmt: skip
    return {**head, "object": "chat.completion", "choices": choices, "usage": _usage(done, body.n)}


def _stream_usage(head: dict[str, Any], kind: str, body: SamplingFields) -> Callable[[list[Completion]], dict[str, Any]] | None:
    if body.stream_options is None or not body.stream_options.include_usage:
        return None
    return lambda done: {**head, "object": kind, "choices": [], "usage": _usage(done, body.n)}


@router.post("/completions", summary="Continue a text prompt (OpenAI's legacy completions; stream with SSE)",
             response_model=None, responses=_LIMITS)  # fmt: skip
async def completions(
    body: CompletionRequest, request: Request, response: Response, session: SessionDep, settings: SettingsDep,
    _: ReadScope,
) -> dict[str, Any] | StreamingResponse:
    """The prompt is continued as is (no chat template), with the same limits as chat completions."""
    prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    if not 1 <= len(prompts) <= 16:
        raise InvalidInput(f"prompt holds {len(prompts)} texts; send 1 to 16", "send one prompt per text")
    check_prompt_size([{"content": text} for text in prompts], settings.chat_max_prompt_tokens)
    requested = body.max_tokens or 16  # OpenAI's default for completions
    check_max_tokens(requested, settings.chat_max_tokens)
    routed, model = await _route(request, session, body.model, body.user)
    started = time.monotonic()
    ticket, handles = await _start(request, model, lambda _chat: [(t, requested) for t in prompts], body,
                                   session, settings)  # fmt: skip
    head = _routed_head({"id": f"cmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": body.model},
                        routed)  # fmt: skip
    recorder = _recorder(request, routed, head["id"], body.user, started, body.n)
    if body.stream:
        def chunk(index: int, piece: str | None, finish: str | None) -> dict[str, Any]:
            return {**head, "object": "text_completion",
                    "choices": [{"index": index, "text": piece or "", "logprobs": None, "finish_reason": finish}]}  # fmt: skip

        usage = _stream_usage(head, "text_completion", body)
        return StreamingResponse(_follow(ticket, handles, chunk, usage, recorder), media_type="text/event-stream",
                                 headers=_variant_headers(routed))  # fmt: skip
    done = await _results(request, ticket, handles)
    if recorder is not None:
        await recorder(done)
    response.headers.update(_variant_headers(routed))
    choices = [{"index": i, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}
               for i, c in enumerate(done)]  # fmt: skip
    return {**head, "object": "text_completion", "choices": choices, "usage": _usage(done, body.n)}


@generate_router.post("/generate", summary="The guide's local deployment: {prompt, max_length} to {response}",
                      responses=_LIMITS)  # fmt: skip
async def generate(
    body: GenerateRequest, request: Request, session: SessionDep, settings: SettingsDep, _: ReadScope
) -> dict[str, Any]:
    """``max_length`` counts prompt and reply together, as in transformers; the reply is what is new."""
    served = getattr(request.app.state, "served", None)
    name = body.model or (served.default if served is not None else None)
    if not name:
        raise InvalidInput("`model` is required here", "name a model from GET /v1/models, e.g. smollm2-135m-instruct")
    check_prompt_size([{"content": body.prompt}], settings.chat_max_prompt_tokens)
    check_max_tokens(body.max_length, settings.chat_max_prompt_tokens + settings.chat_max_tokens, field="max_length")
    turns = [{"role": "user", "content": body.prompt}]

    def prompts(chat: ChatModel) -> list[tuple[str, int]]:
        text = body.prompt if body.raw or not getattr(chat.tokenizer, "chat_template", None) else chat.render(turns)
        used = len(chat.tokenizer(text, add_special_tokens=False)["input_ids"])
        if used >= body.max_length:
            raise InvalidInput(f"the prompt is {used:,} tokens, which leaves nothing of max_length "
                               f"{body.max_length:,}", f"raise max_length above {used:,}")  # fmt: skip
        return [(text, min(body.max_length - used, settings.chat_max_tokens))]

    ticket, handles = await _start(request, name, prompts, SamplingFields(temperature=body.temperature),
                                   session, settings)  # fmt: skip
    [done] = await _results(request, ticket, handles)
    return {"response": done.text, "model": name, "finish_reason": done.finish_reason, "usage": _usage([done], 1)}
