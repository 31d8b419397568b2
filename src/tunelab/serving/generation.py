"""Chat with a loaded model: whole replies or streamed, with the model's own chat template.

A fine-tuned model only answers like it was trained when the prompt is rendered
exactly as in training, so prompts come from the engine's rendering
(``tunelab.training.encoding.render_prompt``, with a plain "role: content"
fallback for base models without a template). Stop tokens, sampling, batching
and streaming are the model runtime's (``tunelab.models.generation``), shared
with the engine's sample replies; this module adds what a chat needs on top:
checking the conversation and keeping a model with its tokenizer and stop ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event
from typing import Any

from tunelab.errors import InvalidInput, PromptTooLong
from tunelab.models.generation import (
    Completion,
    Sampling,
    count_tokens,
    generate,
    stop_token_ids,
    stream,
)
from tunelab.models.loading import ModelParts, load_parts, locate
from tunelab.training.encoding import render_prompt

Messages = Sequence[dict[str, str]]
_ROLES = {"system", "user", "assistant", "tool"}

__all__ = ["ChatModel", "Completion", "Messages", "check_prompt_size", "load_chat_model"]

#: No tokenizer packs more characters than this into one token on ordinary text, so a prompt longer
#: than ``limit * CHARS_PER_TOKEN_MAX`` characters is refused without tokenizing it (a 1 MB prompt
#: answers at once instead of tying up the tokenizer).
CHARS_PER_TOKEN_MAX = 64


@dataclass
class ChatModel:
    """A loaded model and tokenizer that answers conversations."""

    model: Any
    tokenizer: Any
    parts: ModelParts
    stop_ids: list[int] = field(default_factory=list)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    def render(self, messages: Messages) -> str:
        """The prompt text for ``messages``, ending where the assistant's reply starts."""
        _check_messages(messages)
        return render_prompt(self.tokenizer, list(messages))

    @property
    def context_length(self) -> int | None:
        """The most tokens (prompt and reply) the model takes, from its config; None when it does not say."""
        config = getattr(self.model, "config", None)
        value = getattr(config, "max_position_embeddings", None)
        return int(value) if isinstance(value, int) and value > 0 else None

    def fit(self, messages: Messages, max_new_tokens: int, max_prompt_tokens: int) -> int:
        """The reply length that fits: ``max_new_tokens`` capped by the context the prompt leaves.

        A prompt longer than the model's context (less one token for the reply)
        or ``max_prompt_tokens`` is ``PromptTooLong`` (400) with the numbers.
        """
        prompt = self.render(messages)
        context = self.context_length
        limit = min(max_prompt_tokens, context - 1) if context else max_prompt_tokens
        chars = len(prompt)
        if chars > limit * CHARS_PER_TOKEN_MAX:
            raise _too_long(chars, chars // 4, limit, context, estimated=True)
        tokens = count_tokens(self.tokenizer, prompt)
        if tokens > limit:
            raise _too_long(chars, tokens, limit, context, estimated=False)
        return max(1, min(max_new_tokens, context - tokens)) if context else max_new_tokens

    def complete(
        self,
        messages: Messages,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.9,
        *,
        cancel: Event | None = None,
    ) -> Completion:
        """The assistant's reply to ``messages`` (``.text``) with its token counts and why it ended.

        Setting ``cancel`` stops generation at the next token (a client that left).
        """
        sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
        sampling.check()
        [done] = generate(self.model, self.tokenizer, [self.render(messages)], sampling, stop_ids=self.stop_ids,
                          cancel=cancel)  # fmt: skip
        return done

    def stream(
        self,
        messages: Messages,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.9,
        *,
        cancel: Event | None = None,
    ) -> Iterator[str]:
        """The assistant's reply as text pieces, as soon as they are generated (until ``cancel`` is set)."""
        sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
        sampling.check()
        yield from stream(self.model, self.tokenizer, self.render(messages), sampling, stop_ids=self.stop_ids,
                          cancel=cancel)  # fmt: skip


def _too_long(chars: int, tokens: int, limit: int, context: int | None, *, estimated: bool) -> PromptTooLong:
    about = "about " if estimated else ""
    return PromptTooLong(
        f"prompt has {chars:,} characters / {about}{tokens:,} tokens; the limit is {limit:,} tokens",
        "shorten the conversation (drop early turns) or raise TUNELAB_CHAT_MAX_PROMPT_TOKENS up to the "
        "model's context" + (f" ({context:,} tokens)" if context else ""),
        details={"characters": chars, "tokens": tokens, "limit": limit, "context": context},
    )


def check_prompt_size(messages: Messages, max_prompt_tokens: int) -> None:
    """Refuse at once, before any model is loaded or tokenizer run, a conversation no limit could fit.

    More than ``max_prompt_tokens * CHARS_PER_TOKEN_MAX`` characters cannot be
    ``max_prompt_tokens`` tokens; the token figure given is the usual 4 characters a token.
    """
    chars = sum(len(str(message.get("content") or "")) for message in messages)
    if chars > max_prompt_tokens * CHARS_PER_TOKEN_MAX:
        raise _too_long(chars, chars // 4, max_prompt_tokens, None, estimated=True)


def _check_messages(messages: Messages) -> None:
    if not messages:
        raise InvalidInput("A conversation needs at least one message.", hint="Add a user turn.")
    for index, message in enumerate(messages):
        if message.get("role") not in _ROLES or not isinstance(message.get("content"), str):
            raise InvalidInput(
                f"Message {index} must have a role in {sorted(_ROLES)} and string content.",
                hint='e.g. {"role": "user", "content": "Hello"}.',
            )


def load_chat_model(
    name_or_path: str | Path, *, dtype: str = "auto", progress: bool = True
) -> ChatModel:
    """Load a base model, model folder, adapter folder or tunelab run directory for chat."""
    parts = locate(str(name_or_path), progress=progress)
    model, tokenizer = load_parts(parts, precision=dtype)
    return ChatModel(model=model, tokenizer=tokenizer, parts=parts, stop_ids=stop_token_ids(model, tokenizer))
