"""Memory estimates: ordering between methods and scaling with batch and length."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.errors import InvalidInput
from tunelab.models import estimate_memory, model_info


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "tiny"])
def test_methods_are_ordered_full_lora_qlora(name: str, tiny_model_dir: Path) -> None:
    info = model_info(str(tiny_model_dir) if name == "tiny" else name)
    # Without adapter dropout, LoRA keeps the same activations as full fine-tuning.
    full, lora, qlora = (
        estimate_memory(info, m, 4, 256, "bf16", lora_dropout=0.0) for m in ("full", "lora", "qlora")
    )
    assert qlora.total_bytes < lora.total_bytes < full.total_bytes
    assert qlora.weights_bytes < lora.weights_bytes
    assert lora.trainable_parameters < full.trainable_parameters == info.parameters
    for estimate in (full, lora, qlora):
        parts = (
            estimate.weights_bytes + estimate.gradients_bytes + estimate.optimizer_bytes
            + estimate.activations_bytes + estimate.overhead_bytes
        )
        assert estimate.total_bytes == parts


def test_lora_dropout_costs_activation_memory() -> None:
    # peft keeps the dropout-masked input of every adapted layer for backward.
    info = model_info("smollm2-135m-instruct")
    plain = estimate_memory(info, "lora", 8, 512, "fp32", lora_dropout=0.0)
    dropped = estimate_memory(info, "lora", 8, 512, "fp32", lora_dropout=0.05)
    full = estimate_memory(info, "full", 8, 512, "fp32")
    assert plain.activations_bytes == full.activations_bytes < dropped.activations_bytes


def test_builtin_lora_numbers_match_peft() -> None:
    # 16 x sum(in+out) over the 7 linear layers of 30 blocks = PEFT's r=16 all-linear count.
    info = model_info("smollm2-135m-instruct")
    assert estimate_memory(info, "lora", precision="fp32").trainable_parameters == 4_884_480
    full = estimate_memory(info, "full", precision="fp32")
    assert full.gradients_bytes == 4 * 134_515_008 and full.optimizer_bytes == 8 * 134_515_008


def test_activations_scale_with_tokens_and_checkpointing_saves() -> None:
    info = model_info("smollm2-135m-instruct")
    small = estimate_memory(info, "lora", 1, 256, "fp32")
    big = estimate_memory(info, "lora", 4, 512, "fp32")
    assert big.activations_bytes == pytest.approx(8 * small.activations_bytes)
    saved = estimate_memory(info, "lora", 4, 512, "fp32", gradient_checkpointing=True)
    assert saved.activations_bytes < big.activations_bytes
    assert estimate_memory(info, "lora", 4, 512, "bf16").activations_bytes < big.activations_bytes


def test_bad_arguments_raise_invalid_input() -> None:
    info = model_info("smollm2-135m-instruct")
    with pytest.raises(InvalidInput):
        estimate_memory(info, "dora", 1, 1, "fp32")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        estimate_memory(info, "lora", 0, 1, "fp32")
    with pytest.raises(InvalidInput):
        estimate_memory(info, "lora", 1, 1, "fp8")  # type: ignore[arg-type]
    assert estimate_memory(info, "lora", 1, 1, "auto").precision in ("fp32", "bf16", "fp16")
