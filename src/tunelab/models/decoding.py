"""Step-wise batched decoding: many requests in one forward pass, joining and leaving between steps.

``models/generation.py`` hands a whole batch to ``model.generate``: every row
starts together and the batch lasts as long as its longest reply. A server
cannot wait for that, so this is the same generation (the same ``Sampling``
rules and stop ids) one token at a time over one shared KV cache:

- a new request is prefilled on its own (``logits_to_keep=1``: no LM head over
  the prompt) and its cache rows are joined to the running batch, left-padded
  to the same width, with its own position ids, so a row answers exactly as if
  it were alone;
- every row samples with its own temperature, top-k, top-p and seeded
  generator, and ends on its own stop id, stop string or token limit;
- a finished or cancelled row leaves the cache at once, and columns that only
  padding still uses are cut off.

With PEFT LoRA adapters loaded under names, each row names its adapter
(``adapter_names=`` in the forward pass, PEFT's mixed batches), so one batch
serves the base and several fine-tunes. Nothing imports torch at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunelab.models.generation import Completion, Sampling

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch


@dataclass
class Row:
    """One request in the batch: its prompt, how it samples, and what it has generated so far."""

    prompt_ids: list[int]
    sampling: Sampling
    adapter: str | None = None
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0  # characters of ``text`` already handed out
    finish: str | None = None
    generator: Any = None

    def __post_init__(self) -> None:
        import torch

        if self.sampling.seed is not None:
            self.generator = torch.Generator().manual_seed(self.sampling.seed)

    def completion(self) -> Completion:
        """The reply so far as a ``Completion`` (its stop id, if any, counted as in ``generate``)."""
        return Completion(self.text.strip(), len(self.prompt_ids), len(self.tokens), self.finish or "stop",
                          token_ids=list(self.tokens))  # fmt: skip

    def push(self, token: int, tokenizer: Any, stop_ids: list[int]) -> str:
        """Take one sampled token; the text that may be sent now (stop strings held back until ruled out)."""
        if token in stop_ids:
            self.tokens.append(token)
            self.finish = "stop"
            return self._release(final=True)
        self.tokens.append(token)
        text = tokenizer.decode(self.tokens, skip_special_tokens=True)
        for stop in self.sampling.stop:
            at = text.find(stop)
            if at >= 0:
                self.text, self.finish = text[:at], "stop"
                return self._release(final=True)
        self.text = text
        if len(self.tokens) >= self.sampling.max_new_tokens:
            self.finish = "length"
        return self._release(final=self.finish is not None)

    def _release(self, *, final: bool) -> str:
        """New text since the last piece; while running, keep back a partial character or stop string."""
        end = len(self.text)
        if not final:
            if self.text.endswith("\ufffd"):  # half of a multi-byte character
                return ""
            hold = max((len(s) - 1 for s in self.sampling.stop), default=0)
            end = max(self.sent, end - hold)
        piece, self.sent = self.text[self.sent : end], max(self.sent, end)
        return piece


def sample(logits: Any, sampling: Sampling, generator: Any = None) -> int:
    """The next token from one row's logits: argmax when greedy, else temperature, top-k, top-p, then a draw."""
    import torch

    if sampling.greedy:
        return int(torch.argmax(logits))
    scores = logits.float() / sampling.temperature
    if sampling.top_k:
        kth = torch.topk(scores, min(sampling.top_k, scores.shape[-1])).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if sampling.top_p < 1.0:
        ordered, order = torch.sort(scores, descending=True)
        mass = torch.softmax(ordered, dim=-1).cumsum(-1)
        drop = mass - torch.softmax(ordered, dim=-1) >= sampling.top_p  # keep the token that crosses top_p
        scores = scores.scatter(0, order, ordered.masked_fill(drop, float("-inf")))
    # the draw runs on the CPU, where each row's seeded generator lives (the logits may be on a GPU)
    return int(torch.multinomial(torch.softmax(scores, dim=-1).cpu(), 1, generator=generator))


def _pad_left(tensor: Any, width: int, dim: int) -> Any:
    import torch

    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=tensor.dtype, device=tensor.device), tensor], dim=dim)


class Batch:
    """The running rows, their shared KV cache, attention mask and next positions.

    Not thread-safe: one caller (the serving scheduler's loop) drives it.
    ``mixed`` says the model is a PEFT model with named adapters, so every
    forward pass names each row's adapter.
    """

    def __init__(self, model: Any, tokenizer: Any, stop_ids: list[int], pad_id: int, *, mixed: bool = False) -> None:
        self.model, self.tokenizer, self.stop_ids, self.pad_id, self.mixed = model, tokenizer, stop_ids, pad_id, mixed
        self.rows: list[Row] = []
        self.cache: Any = None
        self.mask: Any = None  # (rows, cache width) 1 where a real token is cached
        self.last: list[int] = []  # each row's latest token, fed at the next step

    def __len__(self) -> int:
        return len(self.rows)

    def _forward(self, ids: Any, mask: Any, positions: Any, cache: Any, adapters: list[str | None]) -> Any:
        import torch

        kwargs: dict[str, Any] = {}
        if self.mixed:
            kwargs["adapter_names"] = [name or BASE_ADAPTER for name in adapters]
        with torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                             use_cache=True, logits_to_keep=1, **kwargs)  # fmt: skip
        return out.logits[:, -1, :]

    def admit(self, rows: list[Row]) -> list[str]:
        """Prefill ``rows`` together, sample their first tokens and join them to the batch; their first pieces."""
        import torch
        from transformers import DynamicCache

        if not rows:
            return []
        device = next(self.model.parameters()).device
        width = max(len(row.prompt_ids) for row in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row.prompt_ids) :] = torch.tensor(row.prompt_ids, dtype=torch.long)
            mask[i, width - len(row.prompt_ids) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = self._forward(ids.to(device), mask.to(device), positions.to(device), cache, [r.adapter for r in rows])
        pieces = []
        for i, row in enumerate(rows):
            token = sample(logits[i], row.sampling, row.generator)
            pieces.append(row.push(token, self.tokenizer, self.stop_ids))
            self.last.append(token)
        self._join(cache, mask.to(device))
        self.rows += rows
        return pieces

    def _join(self, cache: Any, mask: Any) -> None:
        """Append a prefilled cache's rows to the batch's, left-padding the narrower side."""
        import torch

        if self.cache is None:
            self.cache, self.mask = cache, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, width, 2), _pad_left(theirs.keys, width, 2)], dim=0)
            mine.values = torch.cat([_pad_left(mine.values, width, 2), _pad_left(theirs.values, width, 2)], dim=0)
        self.mask = torch.cat([_pad_left(self.mask, width, 1), _pad_left(mask, width, 1)], dim=0)

    def step(self) -> list[str]:
        """One token for every row (each with its own sampling); the piece each row may send now."""
        import torch

        if not self.rows:
            return []
        device = self.mask.device
        ids = torch.tensor(self.last, dtype=torch.long, device=device).unsqueeze(1)
        positions = self.mask.sum(-1, keepdim=True)  # real tokens so far = this token's position
        self.mask = torch.cat([self.mask, torch.ones((len(self.rows), 1), dtype=self.mask.dtype, device=device)], 1)
        logits = self._forward(ids, self.mask, positions, self.cache, [row.adapter for row in self.rows])
        pieces = []
        for i, row in enumerate(self.rows):
            token = sample(logits[i], row.sampling, row.generator)
            pieces.append(row.push(token, self.tokenizer, self.stop_ids))
            self.last[i] = token
        return pieces

    def keep(self, keep: list[int]) -> None:
        """Keep only the rows at ``keep`` (finished and cancelled ones leave), then cut all-padding columns."""
        import torch

        if len(keep) == len(self.rows):
            return
        if not keep:
            self.rows, self.last, self.cache, self.mask = [], [], None, None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        self.rows = [self.rows[i] for i in keep]
        self.last = [self.last[i] for i in keep]
        self.mask = self.mask[index]
        used = torch.nonzero(self.mask.any(0)).flatten()
        start = int(used[0]) if used.numel() else 0
        self.mask = self.mask[:, start:]
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[index, :, start:], layer.values[index, :, start:]
