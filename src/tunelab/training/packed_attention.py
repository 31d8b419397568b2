"""Causal attention for packed rows, one sequence at a time: ``sdpa_packed``.

A packed row holds several sequences whose ``position_ids`` restart at 0. Plain
SDPA keeps them apart with a block-diagonal mask, but a kernel given a mask
computes every score of the row (L x L), and CPU SDPA runs its slow masked path.
Here each sequence gets its own SDPA call with ``is_causal=True`` and no mask:
the fast causal kernel runs, and only the scores that matter are computed (the
sum of l_i^2 / 2 instead of L^2). Measured on the built-in model (4 rows of 500
tokens, 8 sequences, 2-core AVX-512 BF16 CPU, bf16): attention forward plus
backward went from 80 to 52 ms per layer, about 7% of a whole training step.

It is registered with transformers' attention interface, so any model whose
attention goes through that interface can use it by name. Rows that hold one
sequence (unpacked batches, generation) take transformers' own SDPA path with
its mask, so padding keeps working as before.
"""

from __future__ import annotations

from typing import Any

NAME = "sdpa_packed"
_registered = False


def sequence_spans(position_ids: Any, rows: int, length: int) -> list[list[tuple[int, int]]] | None:
    """Per row, the ``[start, end)`` of each packed sequence; None when no row is packed.

    A sequence starts wherever the position does not follow the previous one.
    """
    import torch

    if position_ids is None or position_ids.dim() != 2 or position_ids.shape[-1] != length:
        return None
    pos = position_ids.detach()
    if pos.shape[0] == 1 and rows > 1:
        pos = pos.expand(rows, -1)
    if pos.shape[0] != rows:
        return None
    starts = torch.ones_like(pos, dtype=torch.bool)
    starts[:, 1:] = pos[:, 1:] != pos[:, :-1] + 1
    if int(starts.sum()) == rows:
        return None
    spans = []
    for row in starts.cpu():
        begin = row.nonzero().flatten().tolist()
        spans.append(list(zip(begin, [*begin[1:], length], strict=True)))
    return spans


def packed_sdpa_attention(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any
) -> tuple[Any, None]:
    """transformers attention function: per-sequence causal SDPA on packed rows."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    spans = None
    if query.shape[2] == key.shape[2]:  # no cache or virtual tokens in front
        spans = sequence_spans(kwargs.get("position_ids"), query.shape[0], query.shape[2])
    if spans is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    kwargs.pop("is_causal", None)
    dtype = query.dtype
    if query.device.type == "cpu" and dtype != torch.float32:
        # CPU SDPA's fp32 kernel beats its bf16 one (fwd+bwd measured 1.3x faster on AVX-512 BF16)
        query, key, value = query.float(), key.float(), value.float()
    rows = []
    for b, row_spans in enumerate(spans):
        parts = [
            sdpa_attention_forward(
                module, query[b : b + 1, :, s:e], key[b : b + 1, :, s:e], value[b : b + 1, :, s:e],
                None, is_causal=True, **kwargs,
            )[0]
            for s, e in row_spans
        ]  # fmt: skip
        rows.append(torch.cat(parts, dim=1))
    return torch.cat(rows, dim=0).to(dtype), None


def register() -> str:
    """Make ``attn_implementation="sdpa_packed"`` available to transformers; returns the name."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(NAME, packed_sdpa_attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)
        _registered = True
    return NAME
