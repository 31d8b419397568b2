"""Merged exports: an adapter folded into its base, saved as one plain model folder.

Serving stacks (vLLM, TGI, llama.cpp's converters) and colleagues without PEFT
want a single folder that ``AutoModelForCausalLM.from_pretrained`` loads. The
merge runs in fp32 whatever the export dtype, so rounding happens once, at the
end. The folder is written under a temporary name and renamed when complete,
and an existing non-empty folder is never overwritten.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tunelab import __version__
from tunelab.errors import InvalidInput
from tunelab.models.builtin import install_atomically
from tunelab.serving.loading import ModelParts, locate

DTYPES = ("auto", "fp32", "bf16", "fp16")


def _saved_dtype(parts: ModelParts) -> str:
    """``auto``: the dtype the base model was published in (fp32 when it does not say)."""
    config = json.loads((parts.base / "config.json").read_text())
    named = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return {"bfloat16": "bf16", "float16": "fp16"}.get(named, "fp32")


def _build(parts: ModelParts, dtype: str, source: str, folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model: Any = AutoModelForCausalLM.from_pretrained(parts.base, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(parts.tokenizer)
    if parts.adapter is not None:
        from peft import PeftModel

        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
        model = PeftModel.from_pretrained(model, parts.adapter).merge_and_unload()
    target = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    model.to(target).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    card = (parts.adapter or parts.base) / "README.md"
    if card.is_file():
        shutil.copyfile(card, folder / "README.md")
    provenance = {"source": source, "base": str(parts.base), "dtype": dtype, "tunelab_version": __version__,
                  "adapter": str(parts.adapter) if parts.adapter else None}  # fmt: skip
    (folder / "tunelab_export.json").write_text(json.dumps(provenance, indent=2) + "\n")


def export_merged(source: str | Path, out_dir: str | Path, *, dtype: str = "auto", progress: bool = True) -> Path:
    """Write ``source`` (run directory, output or adapter folder, model) as full weights to ``out_dir``."""
    if dtype not in DTYPES:
        raise InvalidInput(f"unknown export dtype {dtype!r}", f"use one of {', '.join(DTYPES)}")
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"{out} already exists and is not an empty folder",
                           "choose a new output folder, or remove that one first")  # fmt: skip
    parts = locate(str(source), progress=progress)
    chosen = _saved_dtype(parts) if dtype == "auto" else dtype
    if out.exists():
        out.rmdir()
    out.parent.mkdir(parents=True, exist_ok=True)
    return install_atomically(out, lambda folder: _build(parts, chosen, str(source), folder))
