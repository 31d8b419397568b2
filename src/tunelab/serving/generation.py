"""Chat generation with the model's own chat template, whole or streamed.

A fine-tuned model only answers like it was trained when the prompt is rendered
exactly as in training, so generation always goes through the tokenizer's chat
template (with a plain "role: content" fallback for base models without one)
and stops at the template's end-of-turn token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from threading import Thread
from typing import Any

from tunelab.errors import InvalidInput
from tunelab.serving.loading import ModelParts, load_parts, locate

Messages = Sequence[dict[str, str]]
_ROLES = {"system", "user", "assistant", "tool"}


@dataclass
class Completion:
    """One reply with its token counts; ``finish_reason`` is "stop" or "length" (OpenAI's words)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


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
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
        lines = [f"{message['role']}: {message['content']}" for message in messages]
        return "\n".join([*lines, "assistant:"])

    def _inputs(
        self, messages: Messages, max_new_tokens: int, temperature: float, top_p: float
    ) -> dict[str, Any]:
        if max_new_tokens < 1:
            raise InvalidInput("max_new_tokens must be at least 1.", hint="e.g. 256.")
        if temperature < 0 or not 0 < top_p <= 1:
            raise InvalidInput(
                "temperature must be >= 0 and top_p in (0, 1].",
                hint="temperature 0 means greedy decoding.",
            )
        text = self.render(messages)
        encoded = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        kwargs: dict[str, Any] = {
            **{key: value.to(self.device) for key, value in encoded.items()},
            "max_new_tokens": max_new_tokens,
            "eos_token_id": self.stop_ids or None,
            "pad_token_id": self.tokenizer.pad_token_id or (self.stop_ids or [0])[0],
        }
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def generate(
        self,
        messages: Messages,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.9,
    ) -> str:
        """The assistant's whole reply to ``messages``."""
        return self.complete(messages, max_new_tokens, temperature, top_p).text

    def complete(
        self,
        messages: Messages,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.9,
    ) -> Completion:
        """The reply plus what an API reports about it: token counts and why it ended."""
        import torch

        kwargs = self._inputs(messages, max_new_tokens, temperature, top_p)
        prompt_length = kwargs["input_ids"].shape[1]
        with torch.inference_mode():
            output = self.model.generate(**kwargs)
        new = output[0][prompt_length:].tolist()
        stopped = bool(new) and new[-1] in self.stop_ids
        while new and new[-1] in self.stop_ids:
            new.pop()
        reply = self.tokenizer.decode(new, skip_special_tokens=True).strip()
        finish = "length" if not stopped and len(new) >= max_new_tokens else "stop"
        return Completion(reply, prompt_length, len(new) + int(stopped), finish)

    def stream(
        self,
        messages: Messages,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.9,
    ) -> Iterator[str]:
        """The assistant's reply as text pieces, as soon as they are generated."""
        import torch
        from transformers import TextIteratorStreamer

        kwargs = self._inputs(messages, max_new_tokens, temperature, top_p)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600
        )

        def run() -> None:
            with torch.inference_mode():
                self.model.generate(**kwargs, streamer=streamer)

        worker = Thread(target=run, daemon=True)
        worker.start()
        yield from (piece for piece in streamer if piece)
        worker.join()


def _check_messages(messages: Messages) -> None:
    if not messages:
        raise InvalidInput("A conversation needs at least one message.", hint="Add a user turn.")
    for index, message in enumerate(messages):
        if message.get("role") not in _ROLES or not isinstance(message.get("content"), str):
            raise InvalidInput(
                f"Message {index} must have a role in {sorted(_ROLES)} and string content.",
                hint='e.g. {"role": "user", "content": "Hello"}.',
            )


def _stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-turn ids: the generation config's, the tokenizer's eos and ChatML's <|im_end|>."""
    ids: list[int] = []
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids += configured if isinstance(configured, list) else [configured]
    ids.append(tokenizer.eos_token_id)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if im_end != tokenizer.unk_token_id:
        ids.append(im_end)
    return list(dict.fromkeys(i for i in ids if isinstance(i, int)))


def load_chat_model(
    name_or_path: str | Path, *, dtype: str = "auto", progress: bool = True
) -> ChatModel:
    """Load a base model, model folder, adapter folder or tunelab run directory for chat."""
    parts = locate(str(name_or_path), progress=progress)
    model, tokenizer = load_parts(parts, dtype=dtype)
    return ChatModel(model=model, tokenizer=tokenizer, parts=parts, stop_ids=_stop_ids(model, tokenizer))
