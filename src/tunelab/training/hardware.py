"""Pick device, precision, attention and fused kernels for this machine.

The rule for ``precision: auto`` is "bf16 wherever the hardware does it natively":
CUDA with bf16 support, or a CPU with AVX-512 BF16 / AMX (oneDNN reports it).
Elsewhere bf16 is emulated and slower than fp32 (measured 6x slower for a matmul
on the 2-core AVX2 development machine), so auto falls back to fp32 there.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from typing import Any

from tunelab.training.config import TrainConfig


@dataclass
class Hardware:
    """The choices made for one run; written to the resolved config."""

    device: str
    precision: str
    attention: str
    kernels: str
    cpu_bf16: bool
    cuda_bf16: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_bf16_supported() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def detect_hardware(config: TrainConfig) -> Hardware:
    """Resolve every ``auto`` in the config to a concrete choice."""
    import torch

    cuda = cuda_available()
    device = "cuda" if config.device == "cuda" or (config.device == "auto" and cuda) else "cpu"
    cuda_bf16 = bool(cuda and torch.cuda.is_bf16_supported())
    cpu_bf16 = cpu_bf16_supported()
    precision = config.precision
    if precision == "auto":
        native = cuda_bf16 if device == "cuda" else cpu_bf16
        if native:
            precision = "bf16"
        elif config.method == "qlora" or (device == "cuda" and config.method != "full"):
            precision = "fp16" if device == "cuda" else "bf16"
        else:
            precision = "fp32"
    attention = config.attention
    if attention == "auto":
        flash = importlib.util.find_spec("flash_attn") is not None
        if device == "cuda":
            attention = "flash_attention_2" if flash and precision != "fp32" else "sdpa"
        else:
            attention = "sdpa_packed"
    kernels = config.kernels
    if kernels == "auto":
        liger = importlib.util.find_spec("liger_kernel") is not None
        kernels = "liger" if device == "cuda" and liger else "none"
    return Hardware(device, precision, attention, kernels, cpu_bf16, cuda_bf16)


def torch_dtype(precision: str) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
