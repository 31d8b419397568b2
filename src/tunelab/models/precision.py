"""Device and precision resolution: the one place that turns ``auto`` into a choice.

Training, serving, export, preflight and the memory estimates all ask this
module, so a run, its estimate and the chat that loads its output agree on the
dtype. The rule for ``precision: auto`` is "bf16 wherever the hardware does it
natively": CUDA with bf16 support, or a CPU with AVX-512 BF16 / AMX (oneDNN
reports it). Elsewhere bf16 is emulated and slower than fp32 (measured 6x slower
for a matmul on the 2-core AVX2 development machine), so auto falls back:

* 4-bit quantized weights (QLoRA) compute in a half type: fp16 on CUDA, bf16 on
  a CPU (where QLoRA does not run anyway; preflight says so);
* frozen weights on a CUDA GPU without bf16 (adapters, inference) use fp16,
  which such GPUs run fast and which frozen weights tolerate;
* full-weight training keeps fp32 there: fp16 master weights are unstable.

This module never imports torch at import time; the hardware probes are small
functions so tests can replace them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from tunelab.errors import InvalidInput

Precision = Literal["fp32", "bf16", "fp16"]
RequestedPrecision = Literal["auto", "bf16", "fp16", "fp32"]  # what a config or a request may say
PRECISIONS: tuple[str, ...] = get_args(Precision)


def cuda_available() -> bool:
    """Whether a CUDA GPU is visible to torch."""
    import torch

    return bool(torch.cuda.is_available())


def cuda_bf16_supported() -> bool:
    """Whether the visible CUDA GPU computes bf16 natively (False without a GPU)."""
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def cpu_bf16_supported() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX-512 BF16 or AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Resolved:
    """The concrete device and precision chosen, with the probes that decided them."""

    device: str
    precision: Precision
    cpu_bf16: bool
    cuda_bf16: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(requested: str = "auto") -> str:
    """``cuda`` when asked for, or when ``auto`` and a GPU is visible; ``mps`` only when asked for; else ``cpu``."""
    if requested not in ("auto", "cpu", "cuda", "mps"):
        raise InvalidInput(f"Unknown device {requested!r}.", hint="Use one of auto, cpu, cuda, mps.")
    if requested == "mps":
        return "mps"  # Apple silicon; preflight checks torch.backends.mps
    if requested == "cuda" or (requested == "auto" and cuda_available()):
        return "cuda"
    return "cpu"


def choose_precision(
    requested: str,
    *,
    device: str,
    native_bf16: bool,
    full_weights: bool = False,
    quantized: bool = False,
) -> Precision:
    """The pure rule of the module docstring: ``requested`` unless it is ``auto``."""
    if requested in PRECISIONS:
        return requested  # type: ignore[return-value]
    if requested != "auto":
        raise InvalidInput(f"Unknown precision {requested!r}.", hint="Use one of auto, fp32, bf16, fp16.")
    if native_bf16:
        return "bf16"
    if quantized or (device == "cuda" and not full_weights):
        return "fp16" if device == "cuda" else "bf16"
    return "fp32"


def resolve(
    device: str = "auto",
    precision: str = "auto",
    *,
    full_weights: bool = False,
    quantized: bool = False,
) -> Resolved:
    """Device and precision for this machine.

    ``full_weights``: every weight is trained (full fine-tuning), so fp16 is no
    fallback; ``quantized``: weights are stored in 4 bits and compute in a half
    type. Inference and adapter training pass neither.
    """
    chosen = resolve_device(device)
    cuda_bf16 = cuda_bf16_supported()
    cpu_bf16 = cpu_bf16_supported()
    # MPS runs bf16, but not as a native fast path on every Mac: auto keeps fp32 there.
    native = cuda_bf16 if chosen == "cuda" else (False if chosen == "mps" else cpu_bf16)
    picked = choose_precision(
        precision, device=chosen, native_bf16=native, full_weights=full_weights, quantized=quantized
    )
    return Resolved(chosen, picked, cpu_bf16, cuda_bf16)


def torch_dtype(precision: str) -> Any:
    """The torch dtype for a resolved precision name (fp32 for anything else)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def dtype_name(dtype: Any) -> Precision:
    """The precision name of a torch dtype or a config.json dtype string (fp32 when unknown)."""
    named = str(dtype).removeprefix("torch.")
    return {"bfloat16": "bf16", "float16": "fp16"}.get(named, "fp32")  # type: ignore[return-value]
