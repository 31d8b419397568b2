"""``gradient_checkpointing: selective``: no matmul of the base runs twice, and the losses are the same.

Full checkpointing reruns each layer's forward in the backward pass;
selective keeps the outputs of the base's matmuls and of attention and
recomputes only the elementwise ops (and LoRA's rank-r products). The test
counts the large matmuls that two LoRA steps of the engine execute, forward
and backward, with each setting: selective must run exactly as many as no
checkpointing, full checkpointing more. The model is wider than the usual
tiny one (hidden 256) so that its base matmuls are above ``LOW_RANK`` and its
LoRA products below.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.training.conftest import read_jsonl


@pytest.fixture(scope="module")
def wide_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tunelab.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("wide-model"), hidden_size=256, layers=2, heads=4, kv_heads=2)


def _run(make_config: Callable[..., Any], run_dir: Path, model: Path, **overrides: Any) -> tuple[int, list[float]]:
    """(large matmuls executed in the whole run, the training losses) of a two-step LoRA run."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from tunelab.training import run_training
    from tunelab.training.checkpointing import LOW_RANK

    matmuls = {torch.ops.aten.mm.default: 0, torch.ops.aten.addmm.default: 1}
    large = [0]

    class CountMatmuls(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            if func in matmuls and args[matmuls[func]].shape[-1] > LOW_RANK:
                large[0] += 1
            return func(*args, **(kwargs or {}))

    config = make_config(model=str(model), max_steps=2, eval_split=0.0,
                         output={"evaluate": False, "eval_generations": 0}, **overrides)  # fmt: skip
    with CountMatmuls():
        result = run_training(config, run_dir)
    assert result.status == "completed", result.error
    losses = [line["loss"] for line in read_jsonl(run_dir / "metrics.jsonl") if line.get("type") == "train"]
    return large[0], losses


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=pytest.mark.slow)])  # bf16: ~4 min here
def test_selective_runs_no_base_matmul_twice_and_keeps_the_losses(
    make_config: Callable[..., Any], tmp_path: Path, wide_model_dir: Path, precision: str
) -> None:
    found = {
        mode: _run(make_config, tmp_path / str(mode), wide_model_dir, gradient_checkpointing=mode, precision=precision)
        for mode in (False, "selective", True)
    }
    (plain, plain_losses), (selective, selective_losses), (full, full_losses) = found.values()
    assert plain > 0 and len(plain_losses) == 2
    assert selective == plain, f"selective ran {selective - plain} large matmuls more than no checkpointing"
    assert full > plain  # full checkpointing reruns the forward's matmuls
    assert selective_losses == pytest.approx(plain_losses, rel=1e-6)
    assert full_losses == pytest.approx(plain_losses, rel=1e-6)


def test_selective_policy_keeps_matmuls_and_attention_and_recomputes_the_rest() -> None:
    import torch
    from torch.utils.checkpoint import CheckpointPolicy

    from tunelab.training.checkpointing import LOW_RANK, selective_policy

    policy = selective_policy()
    aten = torch.ops.aten
    x, base, lora_b = torch.zeros(4, LOW_RANK + 1), torch.zeros(LOW_RANK + 1, 8), torch.zeros(LOW_RANK, 8)
    assert policy(None, aten.mm.default, x, base) == CheckpointPolicy.MUST_SAVE
    assert policy(None, aten.mm.default, torch.zeros(4, LOW_RANK), lora_b) == CheckpointPolicy.PREFER_RECOMPUTE
    out = torch.zeros(4, 8)
    assert policy(None, aten.addmm.default, out, torch.zeros(4, 16), torch.zeros(16, 8)) == CheckpointPolicy.PREFER_RECOMPUTE
    attention = aten._scaled_dot_product_flash_attention_for_cpu.default
    assert policy(None, attention, x, x, x) == CheckpointPolicy.MUST_SAVE
    for op in (aten.mul.Tensor, aten.add.Tensor, aten._to_copy.default, aten.silu.default, aten.rsqrt.default):
        assert policy(None, op, x, x) == CheckpointPolicy.PREFER_RECOMPUTE, op
