"""The memory formula: ordering between kinds of method and scaling with batch and length.

The formula takes the method's facts as arguments (the registry passes them;
``tests/training/test_method_registry.py`` covers that path), so these tests
give them by hand: a full fine-tune, a LoRA r=16 and a 4-bit QLoRA.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.errors import InvalidInput
from tunelab.models import ModelInfo, estimate_memory, model_info


def _estimate(
    info: ModelInfo,
    kind: str,
    batch_size: int = 8,
    max_length: int = 512,
    precision: str = "fp32",
    *,
    dropout: bool = False,
    checkpointing: bool = False,
):
    trainable = info.parameters if kind == "full" else 16 * (info.lora_dims or 0)
    return estimate_memory(
        info,
        method=kind,
        precision=precision,  # type: ignore[arg-type]
        trainable_parameters=trainable or 0,
        full_weights=kind == "full",
        quantized=kind == "qlora",
        adapter_dropout=dropout and kind != "full",
        batch_size=batch_size,
        max_length=max_length,
        gradient_checkpointing=checkpointing,
    )


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "tiny"])
def test_methods_are_ordered_full_lora_qlora(name: str, tiny_model_dir: Path) -> None:
    info = model_info(str(tiny_model_dir) if name == "tiny" else name)
    # Without adapter dropout, LoRA keeps the same activations as full fine-tuning.
    full, lora, qlora = (_estimate(info, m, 4, 256, "bf16") for m in ("full", "lora", "qlora"))
    assert qlora.total_bytes < lora.total_bytes < full.total_bytes
    assert qlora.weights_bytes < lora.weights_bytes
    assert lora.trainable_parameters < full.trainable_parameters == info.parameters
    for estimate in (full, lora, qlora):
        parts = (
            estimate.weights_bytes + estimate.gradients_bytes + estimate.optimizer_bytes
            + estimate.activations_bytes + estimate.overhead_bytes
        )
        assert estimate.total_bytes == parts


def test_adapter_dropout_costs_activation_memory() -> None:
    # peft keeps the dropout-masked input of every adapted layer for backward.
    info = model_info("smollm2-135m-instruct")
    plain = _estimate(info, "lora")
    dropped = _estimate(info, "lora", dropout=True)
    full = _estimate(info, "full")
    assert plain.activations_bytes == full.activations_bytes < dropped.activations_bytes


def test_full_weights_cost_fp32_master_weights_and_adam() -> None:
    info = model_info("smollm2-135m-instruct")
    full = _estimate(info, "full", precision="bf16")
    assert full.weights_bytes == 4 * 134_515_008  # fp32 master weights even when computing in bf16
    assert full.gradients_bytes == 4 * 134_515_008 and full.optimizer_bytes == 8 * 134_515_008


def test_activations_scale_with_tokens_and_checkpointing_saves() -> None:
    info = model_info("smollm2-135m-instruct")
    small = _estimate(info, "lora", 1, 256)
    big = _estimate(info, "lora", 4, 512)
    assert big.activations_bytes == pytest.approx(8 * small.activations_bytes)
    saved = _estimate(info, "lora", 4, 512, checkpointing=True)
    assert saved.activations_bytes < big.activations_bytes
    assert _estimate(info, "lora", 4, 512, "bf16").activations_bytes < big.activations_bytes


def test_bad_arguments_raise_invalid_input() -> None:
    info = model_info("smollm2-135m-instruct")
    with pytest.raises(InvalidInput):
        _estimate(info, "lora", 0, 1)
    with pytest.raises(InvalidInput):
        _estimate(info, "lora", 1, 1, "fp8")
    with pytest.raises(InvalidInput):  # auto is resolved before the formula (models.precision)
        _estimate(info, "lora", 1, 1, "auto")
    with pytest.raises(InvalidInput):
        _estimate(ModelInfo(id="x", source="local"), "lora")  # no facts to estimate from
