"""Merged exports: an adapter folded into its base, saved as one plain model folder.

Serving stacks (vLLM, TGI, llama.cpp's converters) and colleagues without PEFT
want a single folder that ``AutoModelForCausalLM.from_pretrained`` loads. Finding
the parts, loading and the merge itself (fp32 whatever the export dtype, so
rounding happens once, at the end) are the model runtime's (``tunelab.models``);
whether an adapter can be merged at all is the method registry's. The folder is
written under a temporary name and renamed when complete, and an existing
non-empty folder is never overwritten.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tunelab import __version__
from tunelab.errors import InvalidInput
from tunelab.export.target import check_target, write_folder
from tunelab.models.loading import (
    ModelParts,
    load_base_model,
    load_tokenizer,
    locate,
    stored_precision,
)
from tunelab.models.merge import merge_adapter
from tunelab.training.methods import spec_for_adapter

DTYPES = ("auto", "fp32", "bf16", "fp16")


def check_mergeable(parts: ModelParts) -> None:
    """Prompt-learning adapters (prefix, prompt) add virtual tokens; there is nothing to fold in."""
    if parts.adapter is None:
        return
    spec = spec_for_adapter(json.loads((parts.adapter / "adapter_config.json").read_text()))
    if spec is not None and spec.family == "prompt-learning":
        raise InvalidInput(f"a `{spec.name}` adapter cannot be merged into its base model",
                           "export the adapter folder as it is, and load it with PEFT")  # fmt: skip


def build_merged(parts: ModelParts, dtype: str, source: str, folder: Path) -> None:
    """Write the merged model (or the base as it is, without an adapter) into the existing ``folder``."""
    tokenizer = load_tokenizer(parts.tokenizer, pad_fallback=False)
    model: Any = (
        merge_adapter(parts.base, parts.adapter, dtype, tokenizer=tokenizer)
        if parts.adapter is not None
        else load_base_model(parts.base, precision=dtype)
    )
    model.save_pretrained(folder)
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
    check_target(out_dir)
    parts = locate(str(source), progress=progress)
    check_mergeable(parts)
    chosen = stored_precision(parts.base) if dtype == "auto" else dtype
    return write_folder(out_dir, lambda folder: build_merged(parts, chosen, str(source), folder))
