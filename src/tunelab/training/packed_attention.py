"""Causal attention for packed rows, one sequence at a time: ``sdpa_packed``.

A packed row holds several sequences whose ``position_ids`` restart at 0. Plain
SDPA keeps them apart with a block-diagonal mask, but a kernel given a mask
computes every score of the row (L x L), and CPU SDPA runs its slow masked path.
Here each sequence gets its own call of the causal kernel and no mask: only the
scores that matter are computed (the sum of l_i^2 / 2 instead of L^2).

On a CPU the calls go straight to the flash kernel
(``aten::_scaled_dot_product_flash_attention_for_cpu`` and its ``_backward``)
inside one autograd Function (``_packed_causal_function``): the forward writes
each sequence's output into one buffer per layer, the backward each sequence's
dq, dk and dv into one gradient buffer per input. Slicing q, k and v per
sequence under autograd instead (``sliced_attention``, kept for other devices
and attention dropout) makes the backward of every slice allocate a zeroed
gradient of the whole batch and add it up: about 16% of a step of the built-in
model (docs/training.md "Where a step's time goes"). The kernel runs in fp32
whatever the compute dtype (autocast would otherwise cast SDPA to bf16, and the
fp32 kernel is the faster one on AVX-512 BF16 CPUs); inputs are saved in their
own dtype and cast per sequence again in the backward, so a bf16 step keeps
bf16 q, k, v and output for the backward, not fp32 copies (the output is the
tensor ``o_proj`` keeps anyway). GQA needs no repeated keys:
the kernel maps query heads to key heads itself.

It is registered with transformers' attention interface, so any model whose
attention goes through that interface can use it by name. Rows that hold one
sequence (unpacked batches, generation) take transformers' own SDPA path with
its mask, so padding keeps working as before. ``TUNELAB_PACKED_ATTENTION=sliced``
selects the per-slice path on a CPU too, for before/after measurements
(``benchmarks/train_throughput.py --arm``).
"""

from __future__ import annotations

import functools
import os
from typing import Any

NAME = "sdpa_packed"
#: Environment variable that picks the implementation: ``fused`` (default on CPUs) or ``sliced``.
IMPLEMENTATION_ENV = "TUNELAB_PACKED_ATTENTION"
_registered = False

Spans = list[list[tuple[int, int]]]


def sequence_spans(position_ids: Any, rows: int, length: int) -> Spans | None:
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


def sliced_attention(
    module: Any, query: Any, key: Any, value: Any, spans: Spans, **kwargs: Any
) -> Any:
    """One transformers SDPA call per sequence on autograd slices of q, k, v: ``[B, L, H, D]``.

    The general path (any device, attention dropout); on a CPU the fused
    Function computes the same numbers without a gradient buffer per slice.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

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
    return torch.cat(rows, dim=0)


@functools.cache
def _packed_causal_function() -> Any:
    """The autograd Function (built on first use: torch stays out of this module's import)."""
    import torch

    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    flash_backward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward
    fp32 = torch.float32

    class PackedCausalAttention(torch.autograd.Function):
        """q ``[B, Hq, L, D]``, k and v ``[B, Hkv, L, D]`` -> ``[B, L, Hq, D]``, causal within each span."""

        @staticmethod
        def forward(
            ctx: Any, query: Any, key: Any, value: Any, spans: Spans, scale: float | None
        ) -> Any:
            batch, heads, length, dim = query.shape
            out = query.new_empty((batch, length, heads, dim), dtype=fp32)
            logsumexp = query.new_empty((batch, heads, length), dtype=fp32)
            for b, row_spans in enumerate(spans):
                for s, e in row_spans:
                    o, lse = flash(query[b : b + 1, :, s:e].to(fp32), key[b : b + 1, :, s:e].to(fp32),
                                   value[b : b + 1, :, s:e].to(fp32), 0.0, True, scale=scale)  # fmt: skip
                    out[b, s:e] = o[0].transpose(0, 1)
                    logsumexp[b, :, s:e] = lse[0]
            result = out.to(query.dtype)
            # The returned output, not the fp32 buffer: o_proj keeps it anyway, so saving it costs nothing
            ctx.save_for_backward(query, key, value, result, logsumexp)
            ctx.spans, ctx.scale = spans, scale
            return result

        @staticmethod
        def backward(ctx: Any, grad_out: Any) -> Any:
            query, key, value, out, logsumexp = ctx.saved_tensors
            dq, dk, dv = torch.empty_like(query), torch.empty_like(key), torch.empty_like(value)
            for b, row_spans in enumerate(ctx.spans):
                for s, e in row_spans:
                    q, k, v = (t[b : b + 1, :, s:e].to(fp32) for t in (query, key, value))
                    gq, gk, gv = flash_backward(
                        grad_out[b : b + 1, s:e].transpose(1, 2).to(fp32), q, k, v,
                        out[b : b + 1, s:e].transpose(1, 2).to(fp32), logsumexp[b : b + 1, :, s:e], 0.0, True,
                        scale=ctx.scale,
                    )  # fmt: skip
                    dq[b : b + 1, :, s:e] = gq
                    dk[b : b + 1, :, s:e] = gk
                    dv[b : b + 1, :, s:e] = gv
            return dq, dk, dv, None, None

    return PackedCausalAttention


@functools.cache
def _cpu_kernel_maps_key_heads() -> bool:
    """Whether the CPU flash kernel takes fewer key than query heads (GQA, torch 2.5 and later)."""
    import torch

    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 5)


def packed_causal_attention(
    query: Any, key: Any, value: Any, spans: Spans, scale: float | None = None
) -> Any:
    """Causal attention within each span of each row, on the CPU flash kernel: ``[B, L, Hq, D]``.

    ``spans`` must cover every row from 0 to L without gaps (``sequence_spans``
    does); the output is in the query's dtype, the arithmetic in fp32.
    """
    return _packed_causal_function().apply(query, key, value, spans, scale)


def packed_sdpa_attention(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any
) -> tuple[Any, None]:
    """transformers attention function: per-sequence causal attention on packed rows."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    spans = None
    if query.shape[2] == key.shape[2]:  # no cache or virtual tokens in front
        spans = sequence_spans(kwargs.get("position_ids"), query.shape[0], query.shape[2])
    if spans is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    kwargs.pop("is_causal", None)
    fused = (
        query.device.type == "cpu"
        and not kwargs.get("dropout")
        and os.environ.get(IMPLEMENTATION_ENV, "fused") != "sliced"
        and _cpu_kernel_maps_key_heads()
    )
    if fused:
        return packed_causal_attention(query, key, value, spans, kwargs.get("scaling")), None
    dtype = query.dtype
    if query.device.type == "cpu":  # fp32 kernel without autocast (autocast runs SDPA in bf16)
        query, key, value = query.float(), key.float(), value.float()
    return sliced_attention(module, query, key, value, spans, **kwargs).to(dtype), None


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
