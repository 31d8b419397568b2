"""Generation from a loaded model: stop tokens, sampling, batches and streaming, in one place.

Chat in the playground, ``/v1/chat/completions`` and the engine's base-versus-tuned
sample replies all generate text from a rendered prompt. They used to do it each
their own way and stopped on different token ids, so the same model could run on
past its end-of-turn token in one place and not in another. Everything here takes
prompts that are already rendered (chat rendering belongs to the engine's
encoding, ``tunelab.training.encoding.render_prompt``) and never imports torch or
transformers at import time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from threading import Event, Thread
from typing import Any

from tunelab.errors import InvalidInput

# End-of-turn markers of the common chat templates (ChatML, Llama 3, Gemma, Phi-3).
# A model whose template writes one of them ends its reply with it, even where the
# tokenizer's eos and the generation config name another token.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>")
#: OpenAI's limits on ``stop``: four strings; ours also bounds their length (checked each token).
MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 256


@dataclass(frozen=True)
class Sampling:
    """How to pick tokens; ``temperature`` 0 is greedy decoding (deterministic by construction)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()  # text that ends the reply (not included), OpenAI's `stop`

    def check(self) -> None:
        """Refuse values ``generate`` would reject later with a less helpful message."""
        if len(self.stop) > MAX_STOP_STRINGS or any(not s or len(s) > MAX_STOP_CHARS for s in self.stop):
            raise InvalidInput(
                f"stop takes at most {MAX_STOP_STRINGS} strings of 1 to {MAX_STOP_CHARS} characters.",
                hint='e.g. "stop": ["\\n\\n", "User:"].',
            )
        if self.max_new_tokens < 1:
            raise InvalidInput("max_new_tokens must be at least 1.", hint="e.g. 256.")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise InvalidInput(
                "temperature must be >= 0 and top_p in (0, 1].",
                hint="temperature 0 means greedy decoding.",
            )
        if self.top_k is not None and self.top_k < 0:
            raise InvalidInput("top_k must be >= 0.", hint="0 or none turns top-k filtering off.")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.generate``.

        Greedy decoding clears temperature, top_p and top_k explicitly, because a
        model's generation config may set them and transformers warns (or samples)
        when they are present with ``do_sample=False``.
        """
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens}
        if self.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            return kwargs
        kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        if self.top_k is not None:
            kwargs["top_k"] = self.top_k
        return kwargs


@dataclass
class Completion:
    """One reply with its token counts; ``finish_reason`` is "stop" or "length" (OpenAI's words)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    token_ids: list[int] = field(default_factory=list, compare=False)  # the reply's ids (decoder only)


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a reply: the tokenizer's eos, the generation config's and the template's end of turn.

    The union matters: SmolLM2's eos is ``<|im_end|>`` but a Llama 3 instruct
    tokenizer's eos is ``<|end_of_text|>`` while its replies end with
    ``<|eot_id|>``; stopping on only one of them lets a chat model keep talking.
    """
    ids: list[Any] = [getattr(tokenizer, "eos_token_id", None)]
    config = getattr(model, "generation_config", None)
    configured = getattr(config, "eos_token_id", None)
    ids += configured if isinstance(configured, list | tuple) else [configured]
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str):
        unknown = getattr(tokenizer, "unk_token_id", None)
        for token in END_OF_TURN_TOKENS:
            if token in template:
                token_id = tokenizer.convert_tokens_to_ids(token)
                if isinstance(token_id, int) and token_id != unknown:
                    ids.append(token_id)
    return list(dict.fromkeys(i for i in ids if isinstance(i, int)))


def _pad_id(tokenizer: Any, stop_ids: list[int]) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is not None:
        return int(pad)
    return stop_ids[0] if stop_ids else 0


def _encode(tokenizer: Any, prompt: str, special: bool = False) -> list[int]:
    """Prompt ids without special tokens: the rendered template already holds them.

    An encoder-decoder's source has no template: its tokenizer adds the special
    tokens (T5's ``</s>``, BART's ``<s>...</s>``), as in training (``special``).
    """
    return list(tokenizer(prompt, add_special_tokens=special)["input_ids"])


def is_encoder_decoder(model: Any) -> bool:
    """T5, BART and kin: the prompt goes to the encoder and the reply is the whole decoder output."""
    return bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))


def _left_padded(rows: list[list[int]], pad_id: int, device: Any, right: bool = False) -> dict[str, Any]:
    """Input ids and attention mask with padding on the left, so every row's reply starts at the same column.

    Padding by hand instead of through the tokenizer leaves the tokenizer (shared
    by concurrent requests) untouched and works for tokenizers without a pad token.
    ``right`` pads an encoder's input on the right instead (BART's learned
    positions would shift under left padding; its reply starts in the decoder).
    """
    import torch

    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            at = slice(0, len(row)) if right else slice(width - len(row), width)
            ids[i, at] = torch.tensor(row, dtype=torch.long)
            mask[i, at] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def _stopping(*events: Event | None) -> dict[str, Any]:
    """``model.generate`` keywords that end generation at the next token once any of ``events`` is set.

    This is how a chat whose client left, or a server that shuts down, frees
    the model within one token instead of running to ``max_new_tokens``.
    """
    watched = [event for event in events if event is not None]
    if not watched:
        return {}
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = any(event.is_set() for event in watched)
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    return {"stopping_criteria": StoppingCriteriaList([Cancelled()])}


def count_tokens(tokenizer: Any, prompt: str) -> int:
    """The number of tokens a rendered prompt is (no special tokens added: the template holds them)."""
    return len(_encode(tokenizer, prompt))


def _finish(tokenizer: Any, new: list[int], prompt_tokens: int, stop_ids: list[int], limit: int) -> Completion:
    """Cut a generated row at its first stop id (later ones are batch padding) and describe it."""
    cut = next((i for i, token in enumerate(new) if token in stop_ids), None)
    stopped = cut is not None
    kept = new[:cut] if stopped else new
    text = tokenizer.decode(kept, skip_special_tokens=True).strip()
    finish = "length" if not stopped and len(kept) >= limit else "stop"
    return Completion(text, prompt_tokens, len(kept) + int(stopped), finish)


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    sampling: Sampling | None = None,
    *,
    stop_ids: list[int] | None = None,
    batch_size: int = 8,
    cancel: Event | None = None,
) -> list[Completion]:
    """One completion per rendered prompt, ``batch_size`` prompts per ``model.generate`` call.

    The model is put in eval mode and given back in the mode it was in, because
    the engine generates its sample replies in the middle of a training run.
    ``torch.no_grad`` (not ``inference_mode``) keeps any tensor a model caches
    during generation usable by the backward passes that may follow.
    """
    import torch

    sampling = sampling or Sampling()
    sampling.check()
    if not prompts:
        return []
    stops = stop_token_ids(model, tokenizer) if stop_ids is None else stop_ids
    pad = _pad_id(tokenizer, stops)
    device = _device(model)
    if sampling.seed is not None:
        torch.manual_seed(sampling.seed)
    stopping = _stopping(cancel)
    was_training = model.training
    model.eval()
    out: list[Completion] = []
    try:
        with torch.no_grad():
            for start in range(0, len(prompts), max(1, batch_size)):
                seq2seq = is_encoder_decoder(model)
                rows = [_encode(tokenizer, p, seq2seq) for p in prompts[start : start + max(1, batch_size)]]
                inputs = _left_padded(rows, pad, device, right=seq2seq)
                generated = model.generate(
                    **inputs, **sampling.generate_kwargs(), eos_token_id=stops or None, pad_token_id=pad, **stopping
                )
                width = 1 if seq2seq else inputs["input_ids"].shape[1]  # seq2seq: skip the decoder's start token
                for row, ids in zip(rows, generated, strict=True):
                    out.append(_finish(tokenizer, ids[width:].tolist(), len(row), stops, sampling.max_new_tokens))
    finally:
        model.train(was_training)
    return out


def stream(
    model: Any,
    tokenizer: Any,
    prompt: str,
    sampling: Sampling | None = None,
    *,
    stop_ids: list[int] | None = None,
    cancel: Event | None = None,
) -> Iterator[str]:
    """The reply to one rendered prompt as text pieces, as soon as they are generated.

    ``model.generate`` runs in a thread feeding a ``TextIteratorStreamer``; an
    error in that thread ends the stream and is raised here instead of leaving
    the reader waiting for pieces that never come. When the reader stops early
    (closes this generator) or ``cancel`` is set, the thread stops at the next
    token and is joined, so the model is free when this returns.
    """
    import torch
    from transformers import TextIteratorStreamer

    sampling = sampling or Sampling()
    sampling.check()
    stops = stop_token_ids(model, tokenizer) if stop_ids is None else stop_ids
    pad = _pad_id(tokenizer, stops)
    inputs = _left_padded([_encode(tokenizer, prompt, is_encoder_decoder(model))], pad, _device(model))
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    failures: list[BaseException] = []
    closed = Event()
    stopping = _stopping(cancel, closed)

    def run() -> None:
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        try:
            with torch.no_grad():
                model.generate(
                    **inputs, **sampling.generate_kwargs(), eos_token_id=stops or None, pad_token_id=pad,
                    streamer=streamer, **stopping,
                )
        except BaseException as exc:  # handed to the reader below
            failures.append(exc)
            streamer.end()

    worker = Thread(target=run, daemon=True)
    worker.start()
    try:
        yield from (piece for piece in streamer if piece)
    finally:
        closed.set()  # a reader that left early: stop at the next token
        worker.join()
    if failures:
        raise failures[0]
