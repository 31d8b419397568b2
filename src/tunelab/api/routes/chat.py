"""Chat with base and tuned models: OpenAI's ``/v1/chat/completions`` and ``/v1/models``.

Shapes follow OpenAI's chat API, so the official ``openai`` client (and tools
built on it) can talk to a tuned model: ``model`` is a collection entry, a
completed job's id or a built-in id; ``stream: true`` answers with
``chat.completion.chunk`` server-sent events ending in ``data: [DONE]``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from tunelab.api.deps import ReadScope, SessionDep, SettingsDep
from tunelab.errors import InvalidInput
from tunelab.serving.registry import LoadedModels, chat_location, chat_model_ids

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
    state = request.app.state
    if not hasattr(state, "chat_models"):
        state.chat_models = LoadedModels(capacity=1)
    models: LoadedModels = state.chat_models
    return models


def _chunk(reply_id: str, created: int, model: str, delta: dict[str, str], finish: str | None) -> str:
    body = {"id": reply_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n"


@router.get("/models", summary="Models you can chat with (OpenAI shape)")
def list_chat_models(session: SessionDep, _: ReadScope) -> dict[str, Any]:
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "tunelab"} for name in chat_model_ids(session)]
    return {"object": "list", "data": data}


@router.post("/chat/completions", summary="Reply to a conversation (OpenAI shape; stream with SSE)", response_model=None)
def chat_completions(
    body: ChatCompletionRequest, request: Request, session: SessionDep, settings: SettingsDep, _: ReadScope
) -> dict[str, Any] | StreamingResponse:
    location = chat_location(session, settings, body.model)
    turns = [message.as_turn() for message in body.messages]
    if turns[-1]["role"] == "assistant":
        raise InvalidInput("the last message is the assistant's", "end the conversation with a user message")
    limit = body.max_completion_tokens or body.max_tokens or 256
    models = _models(request)
    reply_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if body.stream:
        with models.use(location) as chat:  # load (and check the request) before the stream starts
            chat.render(turns)

        def events() -> Iterator[str]:
            yield _chunk(reply_id, created, body.model, {"role": "assistant", "content": ""}, None)
            with models.use(location) as chat:
                for piece in chat.stream(turns, limit, body.temperature, body.top_p):
                    yield _chunk(reply_id, created, body.model, {"content": piece}, None)
            yield _chunk(reply_id, created, body.model, {}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
    with models.use(location) as chat:
        done = chat.complete(turns, limit, body.temperature, body.top_p)
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
