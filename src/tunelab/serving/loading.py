"""Find and load what a user wants to talk to: a base model, a full fine-tune, or an adapter.

Users point ``tunelab chat`` at whatever they have: a catalog id, a Hub id, a
model folder, a PEFT adapter folder, a trainer checkpoint or a whole tunelab
run directory. This module turns that into (base weights, optional adapter,
tokenizer) and loads them in the best dtype the hardware runs fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.errors import ModelUnavailable, NotFound
from tunelab.models import resolve_model


@dataclass(frozen=True)
class ModelParts:
    """Where the pieces of a chat model live on disk."""

    base: Path
    adapter: Path | None
    tokenizer: Path


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").exists() or (folder / "tokenizer.json").exists()


def _is_hf_model(folder: Path) -> bool:
    config = folder / "config.json"
    if not config.exists():
        return False
    data = json.loads(config.read_text())
    return "model_type" in data or "architectures" in data


def _run_model_name(run_dir: Path) -> str | None:
    """The base model named in a tunelab run's config.json, if it names one as a string."""
    config = run_dir / "config.json"
    if not config.exists():
        return None
    model = json.loads(config.read_text()).get("model")
    return model if isinstance(model, str) else None


def _adapter_base(adapter: Path, fallback: str | None, progress: bool) -> Path:
    """The base model of a PEFT adapter: its recorded base, else the run's configured model."""
    recorded = json.loads((adapter / "adapter_config.json").read_text()).get(
        "base_model_name_or_path"
    )
    for candidate in (recorded, fallback):
        if not candidate:
            continue
        try:
            return resolve_model(candidate, progress=progress)
        except NotFound:
            continue
    raise ModelUnavailable(
        f"The base model of adapter {adapter} ({recorded!r}) is not available.",
        hint="Set base_model_name_or_path in its adapter_config.json to a local model folder, "
        "a built-in id or a Hub id.",
    )


def locate(name_or_path: str, *, progress: bool = True) -> ModelParts:
    """Work out base, adapter and tokenizer folders for anything ``tunelab chat`` accepts."""
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        base = resolve_model(name_or_path, progress=progress)
        return ModelParts(base=base, adapter=None, tokenizer=base)
    run_model = _run_model_name(path)
    output = path / "output"
    if output.is_dir() and ((output / "adapter_config.json").exists() or _is_hf_model(output)):
        path = output  # a tunelab run directory: chat with what it produced
    if (path / "adapter_config.json").exists():
        base = _adapter_base(path, run_model, progress)
        return ModelParts(base, path, path if _has_tokenizer(path) else base)
    base = resolve_model(str(path), progress=progress)
    return ModelParts(base=base, adapter=None, tokenizer=base)


def pick_device_and_dtype(dtype: str = "auto") -> tuple[str, Any]:
    """CUDA if present; bf16 where the hardware supports it (CPU: AVX-512 BF16/AMX), else fp32."""
    import torch

    names = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype in names:
        return device, names[dtype]
    if device == "cuda":
        return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return device, torch.bfloat16 if bf16 else torch.float32


def load_parts(parts: ModelParts, dtype: str = "auto") -> tuple[Any, Any]:
    """Load (model, tokenizer) for ``parts``; the adapter is applied with PEFT, not merged."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device, torch_dtype = pick_device_and_dtype(dtype)
    tokenizer = AutoTokenizer.from_pretrained(parts.tokenizer)
    model = AutoModelForCausalLM.from_pretrained(parts.base, dtype=torch_dtype)
    if parts.adapter is not None:
        from peft import PeftModel

        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
        model = PeftModel.from_pretrained(model, parts.adapter)
    model.to(device)
    model.eval()
    return model, tokenizer
