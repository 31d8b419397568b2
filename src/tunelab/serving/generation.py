"""Chat with a loaded model: whole replies or streamed, with the model's own chat template.

A fine-tuned model only answers like it was trained when the prompt is rendered
exactly as in training, so prompts come from the engine's rendering
(``tunelab.training.encoding.render_prompt``, with a plain "role: content"
fallback for base models without a template). Stop tokens and sampling are the
model runtime's (``tunelab.models.generation``, step by step in
``tunelab.models.decoding``); every reply is a row of its engine's batch
(``tunelab.serving.batching``). This module adds what a chat needs on top:
checking the conversation and the limits, and which engine and adapter a model
rides on (``open_chat``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from threading import Event
from typing import Any

from tunelab.errors import InvalidInput, PromptTooLong
from tunelab.models.generation import (
    Completion,
    Sampling,
    count_tokens,
    generate,
    is_encoder_decoder,
)
from tunelab.models.loading import ModelParts, locate
from tunelab.serving.batching import Engine, Handle, mixable, submit_alone
from tunelab.training.encoding import render_prompt, render_source

Messages = Sequence[dict[str, str]]
_ROLES = {"system", "user", "assistant", "tool"}

__all__ = ["ChatModel", "Completion", "MaxTokensTooLarge", "Messages", "check_max_tokens", "check_prompt_size",
           "load_chat_model"]

#: No tokenizer packs more characters than this into one token on ordinary text, so a prompt longer
#: than ``limit * CHARS_PER_TOKEN_MAX`` characters is refused without tokenizing it (a 1 MB prompt
#: answers at once instead of tying up the tokenizer).
CHARS_PER_TOKEN_MAX = 64


class ChatModel:
    """A model (the base, or one adapter of it) that answers conversations through its engine's scheduler.

    Every reply, the CLI's included, goes through the same batched decode loop
    (``serving.batching``), so a request answers the same alone or in a batch.
    """

    def __init__(self, engine: Engine, tokenizer: Any, parts: ModelParts, adapter: str | None = None) -> None:
        self.engine, self.tokenizer, self.parts, self.adapter = engine, tokenizer, parts, adapter

    @property
    def model(self) -> Any:
        return self.engine.model

    @property
    def stop_ids(self) -> list[int]:
        return self.engine.stop_ids

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    def render(self, messages: Messages) -> str:
        """The prompt text for ``messages``, ending where the assistant's reply starts.

        An encoder-decoder (T5, BART) gets the encoder source it was trained on (``render_source``).
        """
        _check_messages(messages)
        if getattr(self.model.config, "is_encoder_decoder", False):
            return render_source(list(messages))
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
        return self.fit_text(self.render(messages), max_new_tokens, max_prompt_tokens)

    def fit_text(self, prompt: str, max_new_tokens: int, max_prompt_tokens: int) -> int:
        """``fit`` for a prompt that is already text (``/v1/completions``, ``/generate``)."""
        context = self.context_length
        limit = min(max_prompt_tokens, context - 1) if context else max_prompt_tokens
        chars = len(prompt)
        if chars > limit * CHARS_PER_TOKEN_MAX:
            raise _too_long(chars, chars // 4, limit, context, estimated=True)
        tokens = count_tokens(self.tokenizer, prompt)
        if tokens > limit:
            raise _too_long(chars, tokens, limit, context, estimated=False)
        return max(1, min(max_new_tokens, context - tokens)) if context else max_new_tokens

    def submit(self, prompt: str, sampling: Sampling, *, cancel: Event | None = None) -> Handle:
        """Start the reply to a rendered ``prompt`` in the shared batch; read it from the ``Handle``."""
        if is_encoder_decoder(self.model):
            return self._submit_seq2seq(prompt, sampling, cancel)
        ids = list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return self.engine.scheduler.submit(ids, sampling, adapter=self.adapter, cancel=cancel)

    def _submit_seq2seq(self, prompt: str, sampling: Sampling, cancel: Event | None) -> Handle:
        """An encoder-decoder (T5, BART) answers one request at a time through ``generate``.

        The shared decode loop keeps one decoder-only KV cache; an encoder-decoder
        needs the encoder's output beside it, so it is not batched. The scheduler's
        lock keeps it from running while an adapter is loaded or switched.
        """

        def reply(stop: Event) -> Completion:
            if self.adapter and hasattr(self.model, "set_adapter"):
                self.model.set_adapter(self.adapter)
            (done,) = generate(self.model, self.tokenizer, [prompt], sampling, stop_ids=self.stop_ids,
                               batch_size=1, cancel=stop)  # fmt: skip
            return done

        return submit_alone(list(self.tokenizer(prompt)["input_ids"]), sampling, reply,
                            lock=self.engine.scheduler.lock, adapter=self.adapter, cancel=cancel,
                            name="tunelab-seq2seq")  # fmt: skip

    def complete(
        self,
        messages: Messages,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.9,
        *,
        cancel: Event | None = None,
        **sampling: Any,
    ) -> Completion:
        """The assistant's reply to ``messages`` (``.text``) with its token counts and why it ended.

        Setting ``cancel`` stops generation at the next token (a client that left);
        ``sampling`` takes the other ``Sampling`` fields (``top_k``, ``seed``, ``stop``).
        """
        chosen = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, **sampling)
        return self.submit(self.render(messages), chosen, cancel=cancel).result()

    def stream(
        self,
        messages: Messages,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.9,
        *,
        cancel: Event | None = None,
        **sampling: Any,
    ) -> Iterator[str]:
        """The assistant's reply as text pieces, as soon as they are generated (until ``cancel`` is set)."""
        chosen = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, **sampling)
        yield from self.submit(self.render(messages), chosen, cancel=cancel).pieces()


def _too_long(chars: int, tokens: int, limit: int, context: int | None, *, estimated: bool) -> PromptTooLong:
    about = "about " if estimated else ""
    return PromptTooLong(
        f"prompt has {chars:,} characters / {about}{tokens:,} tokens; the limit is {limit:,} tokens",
        "shorten the conversation (drop early turns) or raise TUNELAB_CHAT_MAX_PROMPT_TOKENS up to the "
        "model's context" + (f" ({context:,} tokens)" if context else ""),
        details={"characters": chars, "tokens": tokens, "limit": limit, "context": context},
    )


class MaxTokensTooLarge(PromptTooLong):
    """``max_tokens`` beyond the server's cap (400 with the numbers)."""

    code = "max_tokens_too_large"


def check_max_tokens(requested: int, limit: int, *, field: str = "max_tokens") -> None:
    """Refuse a reply length no request may ask for (``TUNELAB_CHAT_MAX_TOKENS``) before anything loads."""
    if requested > limit:
        raise MaxTokensTooLarge(
            f"{field} is {requested:,}; this server allows at most {limit:,}",
            f"ask for at most {limit:,} tokens (the reply is also capped by the context the prompt leaves), "
            "or raise TUNELAB_CHAT_MAX_TOKENS on the server",
            details={"requested": requested, "limit": limit},
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


def open_chat(parts: ModelParts, engine_for: Callable[[str, ModelParts], Engine]) -> ChatModel:
    """The chat model for ``parts``: a LoRA adapter rides on its base's engine under a name, the rest load whole.

    ``engine_for(key, parts)`` returns the engine for a key (the base's folder,
    or the adapter's for one PEFT cannot mix), made or kept by the caller:
    the API's LRU (``registry.LoadedModels``) or a fresh one for the CLI. This
    one rule for both keeps ``tunelab chat`` answering as the server does.
    """
    if parts.adapter is None or not mixable(parts.adapter):
        engine = engine_for(str(parts.adapter or parts.base), parts)
        return ChatModel(engine, engine.tokenizer, parts)
    engine = engine_for(str(parts.base), ModelParts(parts.base, None, parts.base))
    name, tokenizer = engine.adapter(parts.adapter)
    return ChatModel(engine, tokenizer, parts, adapter=name)


def load_chat_model(
    name_or_path: str | Path, *, dtype: str = "auto", progress: bool = True
) -> ChatModel:
    """Load a base model, model folder, adapter folder or tunelab run directory for chat."""
    parts = locate(str(name_or_path), progress=progress)
    return open_chat(parts, lambda _key, what: Engine(what, precision=dtype))
