"""Load the base model and wrap it for the chosen method.

Adapter methods keep the frozen base in the compute dtype (bf16/fp16 where the
hardware does it natively, no fp32 upcast of frozen weights) and the trainable
adapter parameters in fp32, so optimizer updates are exact. Full fine-tuning
keeps fp32 master weights and computes under autocast when precision is bf16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.models.loading import TASK_MODELS
from tunelab.models.loading import load_base_model as load_pretrained
from tunelab.training.checkpointing import enable as enable_checkpointing
from tunelab.training.config import TrainConfig
from tunelab.training.fused_lora import fuse_lora_layers
from tunelab.training.hardware import Hardware
from tunelab.training.methods import get as method_spec
from tunelab.training.methods import peft_config
from tunelab.training.packed_attention import NAME as PACKED_ATTENTION
from tunelab.training.packed_attention import register as register_packed_attention


def needs_eager_attention(model_config: Any) -> bool:
    """Attention logit soft-capping (Gemma 2 and kin): SDPA kernels cannot apply it, eager can."""
    text = getattr(model_config, "get_text_config", lambda: model_config)()
    return getattr(text, "attn_logit_softcapping", None) is not None


def load_base_model(
    path: Path, config: TrainConfig, hw: Hardware, task: str = "causal_lm", labels: list[str] | None = None
) -> Any:
    """The pretrained model on its device in the storage dtype for the method.

    Loading itself is ``tunelab.models.loading``'s; the engine adds what only
    training needs: the eager fallback for soft-capped attention, the packed
    attention kernel, Liger kernels and no KV cache. The other tasks load
    through their auto class (``task``; ``labels`` size a classifier's head)
    with transformers' own attention choice: packed attention and Liger are
    causal-LM kernels.
    """
    from transformers import AutoConfig

    spec = method_spec(config.method)
    if task != "causal_lm":
        hw.attention = config.attention if config.attention in ("sdpa", "eager") else "auto"
        hw.kernels = "none"
    elif config.attention == "auto" and needs_eager_attention(AutoConfig.from_pretrained(path)):
        hw.attention = "eager"  # recorded in the run's config like every other choice
    if hw.attention == PACKED_ATTENTION:
        register_packed_attention()
    model = load_pretrained(
        path,
        precision="fp32" if spec.trains_full_weights else hw.precision,
        device=hw.device,
        attention=None if hw.attention == "auto" else hw.attention,  # auto: transformers picks
        quantize_4bit=spec.quantized,
        task=task,
        labels=labels,
    )
    if hw.kernels == "liger":
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=model)
    model.config.use_cache = False
    return model


def wrap_model(model: Any, config: TrainConfig, total_steps: int, task: str = "causal_lm") -> Any:
    """Apply the method: freeze and add adapters, or leave all weights trainable.

    The adapter's PEFT ``task_type`` is the task's, so a classifier's new head
    is trained and saved with the adapter (PEFT's ``modules_to_save``).
    """
    import torch

    spec = method_spec(config.method)
    if spec.trains_full_weights:
        model.requires_grad_(True)
    else:
        import peft

        if spec.quantized:
            model = peft.prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=bool(config.gradient_checkpointing)
            )
        adapter = peft_config(config, total_steps)
        adapter.task_type = TASK_MODELS[task][1]
        new = list(getattr(model, "tunelab_new_modules", []))  # a classifier's fresh head and pooler
        if new:
            adapter.modules_to_save = sorted({*(adapter.modules_to_save or []), *new})
            if hasattr(adapter, "exclude_modules"):
                adapter.exclude_modules = new  # trained whole, not adapted
        model = peft.get_peft_model(model, adapter)
        for param in model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
        fuse_lora_layers(model)  # scaling on B and the add in the matmul (fused_lora.py)
    if config.gradient_checkpointing:
        enable_checkpointing(model, config.gradient_checkpointing)
    return model


def is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config")


def uses_prompt_learning(config: TrainConfig) -> bool:
    """Virtual tokens are prepended to every row (prefix, prompt): no packing, no fast loss path."""
    return method_spec(config.method).family == "prompt-learning"


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
