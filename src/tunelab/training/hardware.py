"""Pick device, precision, attention and fused kernels for this machine.

Device and precision are resolved by ``tunelab.models.precision`` (the one rule,
shared with serving, export and the memory estimate), given the method's facts
from the registry: whether it trains full weights and whether its base is 4-bit.
Attention and fused kernels are training choices and are resolved here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from typing import Any

from tunelab.models.precision import resolve
from tunelab.training.config import TrainConfig
from tunelab.training.methods import get as method_spec


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


def detect_hardware(config: TrainConfig) -> Hardware:
    """Resolve every ``auto`` in the config to a concrete choice."""
    spec = method_spec(config.method)
    chosen = resolve(
        config.device, config.precision, full_weights=spec.trains_full_weights, quantized=spec.quantized
    )
    device, precision = chosen.device, chosen.precision
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
    return Hardware(device, precision, attention, kernels, chosen.cpu_bf16, chosen.cuda_bf16)


def mps_available() -> bool:
    """Whether Apple's Metal GPU (``device: mps``) is usable by this torch build on this machine."""
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
