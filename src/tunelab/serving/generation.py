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
from typing import Any

from tunelab.errors import InvalidInput
from tunelab.models.generation import Completion, Sampling, generate, stop_token_ids, stream
from tunelab.models.loading import ModelParts, load_parts, locate
from tunelab.training.encoding import render_prompt

Messages = Sequence[dict[str, str]]
_ROLES = {"system", "user", "assistant", "tool"}

__all__ = ["ChatModel", "Completion", "Messages", "load_chat_model"]


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

    def complete(
        self,
        messages: Messages,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.9,
    ) -> Completion:
        """The assistant's reply to ``messages`` (``.text``) with its token counts and why it ended."""
        sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
        sampling.check()
        [done] = generate(self.model, self.tokenizer, [self.render(messages)], sampling, stop_ids=self.stop_ids)
        return done

    def stream(
        self,
        messages: Messages,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.9,
    ) -> Iterator[str]:
        """The assistant's reply as text pieces, as soon as they are generated."""
        sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
        sampling.check()
        yield from stream(self.model, self.tokenizer, self.render(messages), sampling, stop_ids=self.stop_ids)


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
