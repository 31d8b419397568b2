"""Device and precision resolution, for every machine kind, by replacing the hardware probes.

The table is the engine's choice before the refactor (``training/hardware.py``),
which the training benchmark depends on; serving and the estimates now use it too.
"""

from __future__ import annotations

import pytest

from tunelab.errors import InvalidInput
from tunelab.models import precision


def _machine(monkeypatch: pytest.MonkeyPatch, *, cuda: bool, cuda_bf16: bool, cpu_bf16: bool) -> None:
    monkeypatch.setattr(precision, "cuda_available", lambda: cuda)
    monkeypatch.setattr(precision, "cuda_bf16_supported", lambda: cuda and cuda_bf16)
    monkeypatch.setattr(precision, "cpu_bf16_supported", lambda: cpu_bf16)


# (machine, kind) -> auto precision; kind: inference/adapter, full weights, 4-bit base
CASES = [
    # CPU without native bf16 (AVX2): fp32, except QLoRA's half-precision compute
    ({"cuda": False, "cuda_bf16": False, "cpu_bf16": False}, "adapter", "cpu", "fp32"),
    ({"cuda": False, "cuda_bf16": False, "cpu_bf16": False}, "full", "cpu", "fp32"),
    ({"cuda": False, "cuda_bf16": False, "cpu_bf16": False}, "qlora", "cpu", "bf16"),
    # CPU with AVX-512 BF16 / AMX: bf16 for everything
    ({"cuda": False, "cuda_bf16": False, "cpu_bf16": True}, "adapter", "cpu", "bf16"),
    ({"cuda": False, "cuda_bf16": False, "cpu_bf16": True}, "full", "cpu", "bf16"),
    ({"cuda": False, "cuda_bf16": False, "cpu_bf16": True}, "qlora", "cpu", "bf16"),
    # CUDA with bf16 (Ampere and later)
    ({"cuda": True, "cuda_bf16": True, "cpu_bf16": False}, "adapter", "cuda", "bf16"),
    ({"cuda": True, "cuda_bf16": True, "cpu_bf16": False}, "full", "cuda", "bf16"),
    ({"cuda": True, "cuda_bf16": True, "cpu_bf16": False}, "qlora", "cuda", "bf16"),
    # CUDA without bf16 (T4, V100): fp16 for frozen weights, fp32 master weights for full
    ({"cuda": True, "cuda_bf16": False, "cpu_bf16": True}, "adapter", "cuda", "fp16"),
    ({"cuda": True, "cuda_bf16": False, "cpu_bf16": True}, "full", "cuda", "fp32"),
    ({"cuda": True, "cuda_bf16": False, "cpu_bf16": True}, "qlora", "cuda", "fp16"),
]


@pytest.mark.parametrize(("machine", "kind", "device", "expected"), CASES)
def test_auto_precision(monkeypatch: pytest.MonkeyPatch, machine: dict, kind: str, device: str, expected: str) -> None:
    _machine(monkeypatch, **machine)
    chosen = precision.resolve("auto", "auto", full_weights=kind == "full", quantized=kind == "qlora")
    assert (chosen.device, chosen.precision) == (device, expected)
    assert chosen.cpu_bf16 == machine["cpu_bf16"] and chosen.cuda_bf16 == (machine["cuda"] and machine["cuda_bf16"])


@pytest.mark.parametrize(("machine", "kind", "device", "expected"), CASES)
def test_engine_uses_the_same_rule(
    monkeypatch: pytest.MonkeyPatch, machine: dict, kind: str, device: str, expected: str
) -> None:
    from tunelab.training.config import TrainConfig
    from tunelab.training.hardware import detect_hardware

    _machine(monkeypatch, **machine)
    method = {"adapter": "lora", "full": "full", "qlora": "qlora"}[kind]
    hw = detect_hardware(TrainConfig(dataset="x.json", method=method))
    assert (hw.device, hw.precision) == (device, expected)


def test_cpu_forced_on_a_gpu_machine_uses_the_cpu_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, cuda=True, cuda_bf16=True, cpu_bf16=False)
    chosen = precision.resolve("cpu", "auto")
    assert (chosen.device, chosen.precision) == ("cpu", "fp32")
    assert chosen.cuda_bf16  # recorded as a fact of the machine, whatever the device


def test_explicit_precision_wins_and_bad_names_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, cuda=False, cuda_bf16=False, cpu_bf16=False)
    assert precision.resolve("auto", "bf16").precision == "bf16"
    assert precision.resolve("cuda", "fp16", full_weights=True).device == "cuda"
    with pytest.raises(InvalidInput):
        precision.resolve("auto", "fp8")
    with pytest.raises(InvalidInput):
        precision.resolve("tpu", "auto")


def test_dtype_names_round_trip() -> None:
    for name in precision.PRECISIONS:
        assert precision.dtype_name(precision.torch_dtype(name)) == name
    assert precision.dtype_name("bfloat16") == "bf16" and precision.dtype_name("float64") == "fp32"
