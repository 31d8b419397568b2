"""Model FLOPs per step and the device's peak, for MFU (model FLOPs utilisation).

MFU = the matmul FLOPs the model needs per second / the device's dense peak
FLOP/s at the run's precision. The engine counts *model* FLOPs, not hardware
FLOPs: recomputation from gradient checkpointing and attention scores are left
out (the usual definition, PaLM appendix B, without the attention term), so MFU
compares runs and machines fairly and stays below what a profiler reports.

Per real (non-padding) token, with N the parameters in the transformer body
(everything but the input embedding and the LM head) and T the trainable ones:
forward ``2N``, backward ``2N`` for the activation gradients plus ``2T`` for
the weight gradients; full fine-tuning is the familiar ``6N``, an adapter run
about ``4N``. The LM head (``V x d``) costs ``4Vd`` per position that gets
logits (``6Vd`` when it is trained), and the engine computes logits only at
target positions when its fast loss path is on.

Peaks: a small table of dense tensor-core figures from the vendors' data
sheets, matched on the CUDA device name. CPUs have no honest single figure
(it depends on cores, clocks, vector units and AMX), so on a CPU, or on a GPU
not in the table, MFU is reported only when ``TUNELAB_PEAK_FLOPS`` gives the
peak in FLOP/s; it also overrides the table.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

#: Dense peak FLOP/s by CUDA device name pattern, per precision (no sparsity). First match wins.
PEAK_FLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    (r"H200", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}),
    (r"H100.*PCIe", {"bf16": 756e12, "fp16": 756e12, "fp32": 51e12}),
    (r"H100", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}),
    (r"A100", {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12}),
    (r"L40S", {"bf16": 362e12, "fp16": 362e12, "fp32": 91.6e12}),
    (r"\bL4\b", {"bf16": 121e12, "fp16": 121e12, "fp32": 30.3e12}),
    (r"\bA10\b", {"bf16": 125e12, "fp16": 125e12, "fp32": 31.2e12}),
    (r"RTX 4090", {"bf16": 165.2e12, "fp16": 165.2e12, "fp32": 82.6e12}),
    (r"RTX 3090", {"bf16": 71e12, "fp16": 71e12, "fp32": 35.6e12}),
    (r"V100", {"fp16": 125e12, "fp32": 15.7e12}),
    (r"\bT4\b", {"fp16": 65e12, "fp32": 8.1e12}),
)

PEAK_ENV = "TUNELAB_PEAK_FLOPS"


@dataclass(frozen=True)
class Peak:
    """A device's peak FLOP/s for one precision and where the figure came from."""

    flops: float
    source: str  # "table: <device name>" or "TUNELAB_PEAK_FLOPS"


def peak_for(device_name: str, precision: str, override: str | None = None) -> Peak | None:
    """The peak FLOP/s for ``device_name`` at ``precision``; None when nobody knows it.

    ``override`` (default: the ``TUNELAB_PEAK_FLOPS`` environment variable) wins.
    """
    raw = os.environ.get(PEAK_ENV) if override is None else override
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if value > 0:
            return Peak(value, PEAK_ENV)
    for pattern, peaks in PEAK_FLOPS:
        if re.search(pattern, device_name) and precision in peaks:
            return Peak(peaks[precision], f"table: {device_name}")
    return None


def device_name(device: str) -> str:
    """The CUDA device's name (what the table matches), or ``cpu``."""
    if device.startswith("cuda"):
        import torch

        return str(torch.cuda.get_device_name(torch.device(device)))
    return device


@dataclass(frozen=True)
class FlopModel:
    """Model FLOPs of one training step as ``per_token * tokens + per_logit * positions``."""

    per_token: float
    per_logit: float

    def step(self, tokens: int, logit_positions: int) -> float:
        return self.per_token * tokens + self.per_logit * logit_positions


def flop_model(model: Any, *, trains_full_weights: bool) -> FlopModel:
    """Count the body, trainable and head parameters of ``model`` (see the module docstring)."""
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    embed_weight = getattr(embed, "weight", None)
    head_weight = getattr(head, "weight", None)
    embed_n = embed_weight.numel() if embed_weight is not None else 0
    head_n = head_weight.numel() if head_weight is not None else 0
    tied = embed_weight is not None and head_weight is not None and head_weight is embed_weight
    body = max(0, total - embed_n - (0 if tied else head_n))
    body_trainable = max(0, trainable - (embed_n + (0 if tied else head_n) if trains_full_weights else 0))
    head_factor = 6 if trains_full_weights else 4
    return FlopModel(per_token=4.0 * body + 2.0 * body_trainable, per_logit=float(head_factor * head_n))
