"""Load the base model and wrap it for the chosen method.

Adapter methods keep the frozen base in the compute dtype (bf16/fp16 where the
hardware does it natively, no fp32 upcast of frozen weights) and the trainable
adapter parameters in fp32, so optimizer updates are exact. Full fine-tuning
keeps fp32 master weights and computes under autocast when precision is bf16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.errors import ModelUnavailable
from tunelab.training.config import TrainConfig
from tunelab.training.hardware import Hardware, torch_dtype
from tunelab.training.packed_attention import NAME as PACKED_ATTENTION
from tunelab.training.packed_attention import register as register_packed_attention


def resolve_model_path(name: str) -> Path:
    """A local Hugging Face folder for a catalog name, a local path or a Hub id."""
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return path
    from tunelab.errors import TunelabError
    from tunelab.models import resolve_model

    try:
        return Path(resolve_model(name, progress=False))
    except ModelUnavailable:
        raise
    except TunelabError as exc:
        raise ModelUnavailable(exc.message, hint=exc.hint) from exc


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def needs_eager_attention(model_config: Any) -> bool:
    """Attention logit soft-capping (Gemma 2 and kin): SDPA kernels cannot apply it, eager can."""
    text = getattr(model_config, "get_text_config", lambda: model_config)()
    return getattr(text, "attn_logit_softcapping", None) is not None


def load_base_model(path: Path, config: TrainConfig, hw: Hardware) -> Any:
    """The pretrained model on its device in the storage dtype for the method."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if config.attention == "auto" and needs_eager_attention(AutoConfig.from_pretrained(path)):
        hw.attention = "eager"  # recorded in the run's config like every other choice
    if hw.attention == PACKED_ATTENTION:
        register_packed_attention()
    kwargs: dict[str, Any] = {"attn_implementation": hw.attention}
    if config.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch_dtype(hw.precision),
        )
        kwargs["device_map"] = {"": 0}
    kwargs["dtype"] = torch.float32 if config.method == "full" else torch_dtype(hw.precision)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if config.method != "qlora":
        model.to(hw.device)
    if hw.kernels == "liger":
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=model)
    model.config.use_cache = False
    return model


def _peft_config(config: TrainConfig, total_steps: int) -> Any:
    import peft

    lora = config.lora
    targets = lora.target_modules
    common = {"task_type": "CAUSAL_LM"}
    if config.method in ("lora", "dora", "qlora"):
        return peft.LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=targets,
            use_dora=config.method == "dora",
            **common,
        )
    if config.method == "adalora":
        return peft.AdaLoraConfig(
            init_r=max(lora.r * 3 // 2, lora.r),
            target_r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=targets,
            total_step=max(total_steps, 2),
            tinit=0,
            tfinal=0,
            **common,
        )
    if config.method == "ia3":
        return peft.IA3Config(**common)
    if config.method == "prefix":
        return peft.PrefixTuningConfig(num_virtual_tokens=config.num_virtual_tokens, **common)
    return peft.PromptTuningConfig(num_virtual_tokens=config.num_virtual_tokens, **common)


def wrap_model(model: Any, config: TrainConfig, total_steps: int) -> Any:
    """Apply the method: freeze and add adapters, or leave all weights trainable."""
    import torch

    if config.method == "full":
        model.requires_grad_(True)
    else:
        import peft

        if config.method == "qlora":
            model = peft.prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=config.gradient_checkpointing
            )
        model = peft.get_peft_model(model, _peft_config(config, total_steps))
        for param in model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    return model


def is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config")


def uses_prompt_learning(config: TrainConfig) -> bool:
    return config.method in ("prefix", "prompt")


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
