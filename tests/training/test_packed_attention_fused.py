"""The fused packed attention: the same outputs and gradients as the per-slice path and a masked reference.

Rows mix sequences of length 1, a row that holds one sequence, and grouped
query heads (keys shared by several query heads), in fp32 (tight) and bf16
(loose: bf16 inputs and outputs, fp32 arithmetic on both sides).
"""

from __future__ import annotations

from typing import Any

import pytest

from tunelab.training.packed_attention import (
    IMPLEMENTATION_ENV,
    packed_causal_attention,
    sequence_spans,
    sliced_attention,
)

HEADS, KV_HEADS, DIM, LENGTH = 4, 2, 16, 16
#: Row 0: four sequences, two of them one token long; row 1: one sequence over the whole row.
POSITIONS = [[0, 0, 1, 2, 3, 4, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8], list(range(LENGTH))]


def _inputs(dtype_name: str) -> tuple[Any, Any, Any]:
    import torch

    gen = torch.Generator().manual_seed(3)
    shapes = ((2, HEADS, LENGTH, DIM), (2, KV_HEADS, LENGTH, DIM), (2, KV_HEADS, LENGTH, DIM))
    # q, k, v as the model makes them: [B, L, H, D] projections seen through a transpose
    return tuple(
        torch.randn(b, length, h, d, generator=gen)
        .to(getattr(torch, dtype_name))
        .transpose(1, 2)
        .requires_grad_()
        for b, h, length, d in shapes
    )  # type: ignore[return-value]


def _spans() -> Any:
    import torch

    spans = sequence_spans(torch.tensor(POSITIONS), 2, LENGTH)
    assert spans == [[(0, 1), (1, 6), (6, 7), (7, 16)], [(0, 16)]]
    return spans


def _masked(query: Any, key: Any, value: Any, spans: Any) -> Any:
    """Plain attention over whole rows with a block-diagonal causal mask (fp32)."""
    import torch

    mask = torch.zeros(len(spans), 1, LENGTH, LENGTH, dtype=torch.bool)
    for b, row in enumerate(spans):
        for s, e in row:
            mask[b, 0, s:e, s:e] = torch.ones(e - s, e - s, dtype=torch.bool).tril()
    out = torch.nn.functional.scaled_dot_product_attention(
        query.float(), key.float(), value.float(), attn_mask=mask, enable_gqa=True
    )
    return out.transpose(1, 2).to(query.dtype)


def _sliced(query: Any, key: Any, value: Any, spans: Any) -> Any:
    """The previous implementation: transformers' SDPA on autograd slices, in fp32."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaAttention

    config = LlamaConfig(
        hidden_size=HEADS * DIM, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS
    )
    module = LlamaAttention(config, layer_idx=0)
    return sliced_attention(module, query.float(), key.float(), value.float(), spans).to(
        query.dtype
    )


def _run(attention: Any, dtype: str) -> tuple[Any, list[Any]]:
    import torch

    q, k, v = _inputs(dtype)
    out = attention(q, k, v, _spans())
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
    (out.float() * weights).sum().backward()
    return out.detach().float(), [t.grad.float() for t in (q, k, v)]


@pytest.mark.parametrize(("dtype", "tol"), [("float32", 1e-5), ("bfloat16", 2e-2)])
@pytest.mark.parametrize("reference", [_sliced, _masked], ids=["sliced", "masked"])
def test_fused_matches_reference(dtype: str, tol: float, reference: Any) -> None:
    import torch

    out, grads = _run(packed_causal_attention, dtype)
    want, want_grads = _run(reference, dtype)
    assert out.shape == (2, LENGTH, HEADS, DIM)
    torch.testing.assert_close(out, want, rtol=tol, atol=tol)
    for ours, theirs in zip(grads, want_grads, strict=True):
        assert ours.abs().sum() > 0
        torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)


def test_fused_output_and_gradients_keep_the_input_dtype() -> None:
    import torch

    q, k, v = _inputs("bfloat16")
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the engine's LoRA step runs under autocast
        out = packed_causal_attention(q, k, v, _spans())
    out.float().sum().backward()
    assert out.dtype == q.grad.dtype == k.grad.dtype == torch.bfloat16
    assert k.grad.shape == k.shape and q.grad.stride() == q.stride()


def test_fused_runs_without_autograd() -> None:
    import torch

    q, k, v = _inputs("float32")
    with torch.no_grad():
        out = packed_causal_attention(q, k, v, _spans())
    torch.testing.assert_close(out, _masked(q, k, v, _spans()).detach(), rtol=1e-5, atol=1e-5)


def test_environment_selects_the_sliced_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """``TUNELAB_PACKED_ATTENTION=sliced`` is the before arm of the benchmarks: it must not run the Function."""
    import torch
    from torch.profiler import profile

    from tunelab.training.packed_attention import packed_sdpa_attention

    q, k, v = _inputs("float32")
    module = type("Attention", (torch.nn.Module,), {})()
    module.num_key_value_groups = HEADS // KV_HEADS
    position_ids = torch.tensor(POSITIONS)
    for choice, autograd_node in (
        ("fused", "PackedCausalAttentionBackward"),
        ("sliced", "SliceBackward0"),
    ):
        monkeypatch.setenv(IMPLEMENTATION_ENV, choice)
        with profile() as prof:
            out, _ = packed_sdpa_attention(
                module, q, k, v, None, position_ids=position_ids, scaling=None
            )
            out.sum().backward()
        names = {event.key for event in prof.key_averages()}
        assert any(autograd_node in name for name in names), (choice, sorted(names))
