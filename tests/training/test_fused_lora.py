"""The fused LoRA forward: PEFT's numbers, PEFT's fallbacks, and the engine's first losses unchanged."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.training.conftest import read_jsonl

from tunelab.training.fused_lora import FORWARD_ENV, fuse_lora_layers


def _pair(alpha: float, dtype: Any = None) -> tuple[Any, Any, Any]:
    """A base model and two LoRA copies of it with random A and B, the second one fused."""
    import peft
    import torch

    torch.manual_seed(0)
    base = torch.nn.Sequential(
        torch.nn.Linear(32, 48), torch.nn.ReLU(), torch.nn.Linear(48, 16, bias=False)
    )
    if dtype is not None:
        base = base.to(dtype)
    config = peft.LoraConfig(
        r=4, lora_alpha=alpha, target_modules=["0", "2"], init_lora_weights=False
    )
    plain = peft.get_peft_model(copy.deepcopy(base), config)
    for param in plain.parameters():
        if param.requires_grad:
            param.data = param.data.float()  # the engine's fp32 adapter over a bf16 base
    fused = copy.deepcopy(plain)
    assert fuse_lora_layers(fused) == 2
    return base, plain, fused


def _forward_backward(model: Any, x: Any, autocast: bool) -> tuple[Any, dict[str, Any]]:
    import torch
    from peft.helpers import disable_input_dtype_casting

    cast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast)
    with cast, disable_input_dtype_casting(model, active=autocast):
        out = model(x)
    out.float().square().sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach().float(), grads


@pytest.mark.parametrize("alpha", [8.0, 6.0], ids=["power-of-two scaling", "scaling 1.5"])
def test_fused_forward_matches_peft_in_fp32(alpha: float) -> None:
    import torch

    _, plain, fused = _pair(alpha)
    x = torch.randn(3, 5, 32)
    out, grads = _forward_backward(plain, x, autocast=False)
    fused_out, fused_grads = _forward_backward(fused, x, autocast=False)
    torch.testing.assert_close(fused_out, out, rtol=1e-6, atol=1e-6)
    assert grads.keys() == fused_grads.keys() and len(grads) == 4
    for name, grad in grads.items():  # rounding in another order: relative to the largest entry
        scale = float(grad.abs().max())
        torch.testing.assert_close(fused_grads[name] / scale, grad / scale, rtol=1e-5, atol=1e-5)


def test_fused_forward_matches_peft_under_bf16_autocast() -> None:
    """The engine's LoRA step: bf16 base, fp32 adapters, autocast without PEFT's input casting."""
    import torch

    _, plain, fused = _pair(8.0, torch.bfloat16)
    x = torch.randn(3, 5, 32, dtype=torch.bfloat16)
    out, grads = _forward_backward(plain, x, autocast=True)
    fused_out, fused_grads = _forward_backward(fused, x, autocast=True)
    torch.testing.assert_close(fused_out, out, rtol=2e-2, atol=2e-2)
    for name, grad in grads.items():
        assert fused_grads[name].dtype == torch.float32
        scale = float(grad.abs().max())
        torch.testing.assert_close(fused_grads[name] / scale, grad / scale, rtol=2e-2, atol=2e-2)


def test_disabled_and_merged_adapters_take_peft_forward() -> None:
    import torch

    base, plain, fused = _pair(8.0)
    x = torch.randn(4, 32)
    with fused.disable_adapter():  # the engine's base measurement
        torch.testing.assert_close(fused(x), base(x))
    adapted = plain(x).detach()
    fused.merge_adapter()
    torch.testing.assert_close(fused(x).detach(), adapted, rtol=1e-5, atol=1e-5)
    fused.unmerge_adapter()
    torch.testing.assert_close(fused(x).detach(), adapted, rtol=1e-6, atol=1e-6)


def test_environment_keeps_peft_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    import peft
    import torch

    monkeypatch.setenv(FORWARD_ENV, "peft")
    model = peft.get_peft_model(
        torch.nn.Sequential(torch.nn.Linear(8, 8)), peft.LoraConfig(r=2, target_modules=["0"])
    )
    assert fuse_lora_layers(model) == 0
    assert "forward" not in vars(model.base_model.model[0])


@pytest.mark.parametrize(("precision", "rel"), [("fp32", 1e-5), ("bf16", 2e-2)])
def test_speed_changes_keep_the_first_losses(
    make_config: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    precision: str,
    rel: float,
) -> None:
    """The engine before the speed changes, with fused attention, and with fused LoRA too: same losses."""
    from tunelab.training import run_training
    from tunelab.training.packed_attention import IMPLEMENTATION_ENV

    def run(name: str, attention: str, lora: str) -> list[float]:
        monkeypatch.setenv(IMPLEMENTATION_ENV, attention)
        monkeypatch.setenv(FORWARD_ENV, lora)
        config = make_config(
            max_steps=3,
            precision=precision,
            eval_split=0.0,
            output={"evaluate": False, "eval_generations": 0},
        )
        result = run_training(config, tmp_path / f"{precision}-{name}")
        assert result.status == "completed", result.error
        lines = read_jsonl(tmp_path / f"{precision}-{name}" / "metrics.jsonl")
        return [line["loss"] for line in lines if line.get("type") == "train"]

    before = run("before", "sliced", "peft")
    attention = run("attention", "fused", "peft")
    both = run("both", "fused", "fused")
    assert len(before) == 3 and before[-1] < before[0]
    assert attention == pytest.approx(before, rel=rel)
    assert both == pytest.approx(before, rel=rel)
