"""Chat with base and tuned models: OpenAI's ``/v1/chat/completions`` and ``/v1/models``.

Shapes follow OpenAI's chat API, so the official ``openai`` client (and tools
built on it) can talk to a tuned model: ``model`` is a collection entry, a
completed job's id or a built-in id; ``stream: true`` answers with
``chat.completion.chunk`` server-sent events ending in ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.concurrency import iterate_in_threadpool, run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from tunelab.api.deps import ReadScope, SessionDep, SettingsDep
from tunelab.api.errors import ErrorBody
from tunelab.errors import InvalidInput
from tunelab.serving.generation import ChatModel, check_prompt_size
from tunelab.serving.registry import ChatTicket, LoadedModels, chat_location, chat_model_ids

T = TypeVar("T")

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


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


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description="Collection entry, completed job id, or built-in id.")
    messages: list[ChatMessage] = Field(min_length=1, description="The conversation so far.")
    max_tokens: int | None = Field(default=None, ge=1, le=8192, description="Reply length limit in tokens.")
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192, description="Alias of max_tokens.")
    temperature: float = Field(default=0.7, ge=0.0, le=2.0, description="0 is greedy decoding.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    n: int = Field(default=1, ge=1, le=1, description="Only one choice per request.")
    stream: bool = Field(default=False, description="Send the reply as server-sent event chunks.")


def _models(request: Request) -> LoadedModels:
    """The app's loaded chat models (made on first use, with the settings' queue size)."""
    state = request.app.state
    if not hasattr(state, "chat_models"):
        state.chat_models = LoadedModels(capacity=1, queue_size=state.settings.chat_queue_size)
    models: LoadedModels = state.chat_models
    return models


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


def _chunk(reply_id: str, created: int, model: str, delta: dict[str, str], finish: str | None) -> str:
    body = {"id": reply_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n"


@router.get("/models", summary="Models you can chat with (OpenAI shape)")
def list_chat_models(session: SessionDep, _: ReadScope) -> dict[str, Any]:
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "tunelab"} for name in chat_model_ids(session)]
    return {"object": "list", "data": data}


_LIMITS = {
    400: {"model": ErrorBody, "description": "The prompt is longer than the model's context or the server's cap."},
    503: {"model": ErrorBody, "description": "The model's chat queue is full (or the store is busy); retry after "
                                              "`Retry-After` seconds."},
}


@router.post("/chat/completions", summary="Reply to a conversation (OpenAI shape; stream with SSE)", response_model=None,
             responses=_LIMITS)  # fmt: skip
async def chat_completions(
    body: ChatCompletionRequest, request: Request, session: SessionDep, settings: SettingsDep, _: ReadScope
) -> dict[str, Any] | StreamingResponse:
    """Bounded work: the prompt is checked against the model's context and the server's cap (400 with
    the numbers), ``max_tokens`` is capped by the context left, at most ``chat_queue_size`` requests per
    model run or wait (503 beyond), and generation stops when the client leaves or the server stops.
    """
    turns = [message.as_turn() for message in body.messages]
    if turns[-1]["role"] == "assistant":
        raise InvalidInput("the last message is the assistant's", "end the conversation with a user message")
    check_prompt_size(turns, settings.chat_max_prompt_tokens)  # a 1 MB prompt: 400 before anything loads
    location = await run_in_threadpool(chat_location, session, settings, body.model)
    requested = body.max_completion_tokens or body.max_tokens or 256
    models = _models(request)
    reply_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    ticket = models.enter(location)  # 503 at once when the model's queue is full
    try:
        await run_in_threadpool(models.load, location)  # load errors answer with their status
        chat = await _watching(request, ticket, ticket.wait)
        limit = await run_in_threadpool(chat.fit, turns, requested, settings.chat_max_prompt_tokens)
    except BaseException:
        ticket.close()
        raise
    if body.stream:
        return StreamingResponse(_stream(ticket, chat, turns, limit, body, reply_id, created),
                                 media_type="text/event-stream")  # fmt: skip
    try:
        done = await _watching(request, ticket, lambda: chat.complete(
            turns, limit, body.temperature, body.top_p, cancel=ticket.cancel))  # fmt: skip
    finally:
        ticket.close()
    message = {"role": "assistant", "content": done.text}
    usage = {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
             "total_tokens": done.prompt_tokens + done.completion_tokens}  # fmt: skip
    return {
        "id": reply_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [{"index": 0, "message": message, "finish_reason": done.finish_reason}],
        "usage": usage,
    }


async def _stream(ticket: ChatTicket, chat: ChatModel, turns: list[dict[str, str]], limit: int,
                  body: ChatCompletionRequest, reply_id: str, created: int) -> AsyncIterator[str]:  # fmt: skip
    """The reply as chunks while holding the model; a client that leaves cancels it at the next token.

    Starlette cancels this generator when the client disconnects; the ``finally``
    sets the cancel flag (the generation thread stops at its next token), closes
    the token iterator and only then gives the model back.
    """
    pieces = chat.stream(turns, limit, body.temperature, body.top_p, cancel=ticket.cancel)
    try:
        yield _chunk(reply_id, created, body.model, {"role": "assistant", "content": ""}, None)
        async for piece in iterate_in_threadpool(pieces):
            yield _chunk(reply_id, created, body.model, {"content": piece}, None)
        yield _chunk(reply_id, created, body.model, {}, "stop")
        yield "data: [DONE]\n\n"
    finally:
        ticket.cancel.set()
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(pieces.close)  # joins the generation thread
            ticket.close()
