"""``gradient_checkpointing``: how a step keeps what the backward pass needs, and ``auto``'s choice.

Activations are the largest part of a step's peak (docs/training.md, memory
profile). ``true`` checkpoints every decoder layer: only its input is kept and
its forward runs again in the backward pass (about a third more compute).
``selective`` keeps the outputs of the layer's matmuls and of attention and
recomputes only the elementwise ops between them (norms, rotary, SiLU and the
product, dtype casts) and LoRA's rank-r products: no matmul of the base runs
twice. ``auto`` weighs the one memory estimate (``methods.estimate_for``)
against the memory the run may use: ``memory_limit_gb`` from the config, else
``TUNELAB_MEMORY_LIMIT_GB``, and never more than what the device has free now.
It stays off when the estimate without checkpointing fits, picks ``selective``
when that fits, else ``true``, and the engine says so in an event
(``gradient_checkpointing``) with the estimates.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from tunelab.models.catalog import ModelInfo
from tunelab.training.config import TrainConfig

GIB = 1024**3
#: Environment cap in GiB, for machines (and tests) where the config should not say it.
LIMIT_ENV = "TUNELAB_MEMORY_LIMIT_GB"


@dataclass(frozen=True)
class CheckpointingChoice:
    """What ``auto`` decided and the numbers it decided on."""

    mode: bool | str  # False, "selective" or True
    requested: bool | str
    estimate_without_bytes: int
    estimate_selective_bytes: int
    estimate_with_bytes: int
    limit_bytes: int
    limit_source: str  # memory_limit_gb | TUNELAB_MEMORY_LIMIT_GB | available

    @property
    def enabled(self) -> bool:
        return self.mode is not False

    def as_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, **asdict(self)}

    def message(self) -> str:
        without, limit = self.estimate_without_bytes / GIB, self.limit_bytes / GIB
        where = f"the {limit:.1f} GiB limit ({self.limit_source})"
        if self.mode == "selective":
            return (f"gradient checkpointing selective (auto): the estimate without it, {without:.1f} GiB, exceeds "
                    f"{where}; selective (no matmul recomputed) {self.estimate_selective_bytes / GIB:.1f} GiB fits")  # fmt: skip
        if self.enabled:
            return (f"gradient checkpointing on (auto): the estimate without it, {without:.1f} GiB, and with selective "
                    f"checkpointing, {self.estimate_selective_bytes / GIB:.1f} GiB, exceed {where}; "
                    f"with it {self.estimate_with_bytes / GIB:.1f} GiB")  # fmt: skip
        return f"gradient checkpointing off (auto): the estimate, {without:.1f} GiB, fits {where}"


def available_bytes(device: str) -> int:
    """Memory free now on ``device`` (a CUDA GPU's free memory, else the system's available RAM)."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


def memory_limit(config: TrainConfig, device: str) -> tuple[int, str]:
    """(bytes the run may use, where the number came from)."""
    free = available_bytes(device)
    configured = getattr(config, "memory_limit_gb", None)
    if configured is not None:
        cap, source = int(configured * GIB), "memory_limit_gb"
    elif os.environ.get(LIMIT_ENV):
        cap, source = int(float(os.environ[LIMIT_ENV]) * GIB), LIMIT_ENV
    else:
        return free, "available"
    return (cap, source) if cap <= free else (free, "available")


def choose(
    config: TrainConfig, info: ModelInfo, device: str, *, precision: str | None = None
) -> CheckpointingChoice:
    """The checkpointing ``config`` runs with: as configured, or ``auto``'s decision."""
    from tunelab.training.methods import estimate_for

    sizes = {
        mode: estimate_for(config.model_copy(update={"gradient_checkpointing": mode}), info,
                           precision=precision).total_bytes
        for mode in (False, "selective", True)
    }  # fmt: skip
    limit, source = memory_limit(config, device)
    requested = config.gradient_checkpointing
    if requested == "auto":
        mode: bool | str = False if sizes[False] <= limit else "selective" if sizes["selective"] <= limit else True
    else:
        mode = requested
    return CheckpointingChoice(mode, requested, sizes[False], sizes["selective"], sizes[True], limit, source)


# -- selective checkpointing: keep the matmul outputs, recompute the cheap ops -------------

#: A matmul whose inner dimension is at most this is recomputed (LoRA's B product, rank r:
#: a few percent of the frozen base matmul it sits beside); larger ones keep their output.
LOW_RANK = 128
#: Attention kernels (CPU and CUDA), whose outputs are always kept: recomputing them is dear.
ATTENTION_OPS = (
    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
    "_flash_attention_forward", "_efficient_attention_forward",
)  # fmt: skip


def selective_policy() -> Callable[..., Any]:
    """The policy for ``torch.utils.checkpoint``'s selective checkpointing.

    Without checkpointing autograd keeps, per layer, the inputs of every
    elementwise op as well: RMSNorm's fp32 copies of the residual stream, q, k
    and v after rotary in fp32 for the CPU attention kernel, and SiLU's and the
    product's inputs in the MLP (about 24 KB per token per layer of SmolLM2 in
    bf16). Those are cheap to recompute from the outputs of the matmuls; the
    matmuls (and attention) are not. So the outputs of the frozen base's matmuls
    and of attention are kept, everything else is recomputed in the backward
    pass, and no matmul of the base runs twice.
    """
    import torch
    from torch.utils.checkpoint import CheckpointPolicy

    aten = torch.ops.aten
    attention = {getattr(aten, name).default for name in ATTENTION_OPS if hasattr(aten, name)}
    matmuls = {aten.mm.default: 0, aten.bmm.default: 0, aten.addmm.default: 1, aten.baddbmm.default: 1}

    def policy(_ctx: Any, op: Any, *args: Any, **_kwargs: Any) -> Any:
        if op in attention:
            return CheckpointPolicy.MUST_SAVE
        if op in matmuls and args[matmuls[op]].shape[-1] > LOW_RANK:
            return CheckpointPolicy.MUST_SAVE
        return CheckpointPolicy.PREFER_RECOMPUTE

    return policy


def enable(model: Any, mode: bool | str) -> None:
    """Turn on activation checkpointing of every decoder layer: full (``True``) or ``selective``."""
    model.gradient_checkpointing_enable(
        gradient_checkpointing_kwargs={"use_reentrant": False, "context_fn": recompute_contexts(model, mode)}
    )
    # Some transformers versions also make the embeddings' output require grad, which only reentrant
    # checkpointing needs; with it the backward pass would run through the first layer's frozen matmuls
    # for nothing. Others (4.57 with non-reentrant checkpointing) install no hook, and removing an
    # absent hook raises, so look for it first.
    if getattr(model, "_require_grads_hook", None) is not None and hasattr(model, "disable_input_require_grads"):
        model.disable_input_require_grads()


def recompute_contexts(model: Any, mode: bool | str) -> Callable[[], tuple[Any, Any]]:
    """``context_fn`` for ``torch.utils.checkpoint``: selective or not, the recompute sees the forward's PEFT state.

    The engine turns PEFT's input casting off only around the forward pass
    (``Recipe.autocast``), but a checkpointed layer's forward runs again during
    the backward pass, after that context has closed: it would cast every
    adapted layer's input to fp32 and back, which is wasted work, and which
    selective checkpointing refuses outright (its recompute must run the same
    ops as the forward). So each layer's recompute runs with the casting flag
    its forward ran with.
    """
    import contextlib

    from torch.utils.checkpoint import create_selective_checkpoint_contexts

    adapted = [module for module in model.modules() if hasattr(module, "cast_input_dtype_enabled")]
    policy = selective_policy() if mode == "selective" else None

    @contextlib.contextmanager
    def casting(flag: bool | None, inner: Any) -> Any:
        saved = [module.cast_input_dtype_enabled for module in adapted]
        for module in adapted:
            module.cast_input_dtype_enabled = flag
        try:
            with inner:
                yield
        finally:
            for module, value in zip(adapted, saved, strict=True):
                module.cast_input_dtype_enabled = value

    def contexts() -> tuple[Any, Any]:
        forward, recompute = (create_selective_checkpoint_contexts(policy) if policy is not None
                              else (contextlib.nullcontext(), contextlib.nullcontext()))  # fmt: skip
        if not adapted:
            return forward, recompute
        return forward, casting(adapted[0].cast_input_dtype_enabled, recompute)

    return contexts
