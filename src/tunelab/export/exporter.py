"""Every export format behind one function: ``export_model(source, out, fmt=...)``.

``FORMATS`` is the one list of formats (the CLI's ``--format``, the API's
``format`` field and the dashboard's choices via ``GET /api/meta``). Each
format builds inside a temporary sibling of the target that is renamed at the
end (``export.target``), so a failed export leaves nothing, and each folder
gets a model card (``export.model_card``) saying what it is and how to run it.
Formats that need plain weights (GGUF, ONNX) merge the adapter first through
``export.merged`` (the model runtime's one merge), in fp32, into a scratch
folder inside the temporary one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tunelab import __version__
from tunelab.errors import InvalidInput
from tunelab.export.merged import DTYPES, build_merged, check_mergeable
from tunelab.export.model_card import render_model_card, run_documents
from tunelab.export.target import check_target, write_folder
from tunelab.models.loading import ModelParts, load_tokenizer, locate, stored_precision

Stage = Callable[[str, float], None]


@dataclass(frozen=True)
class ExportFormat:
    """One way to hand a model on: its name, what it is for, and whether it needs an adapter."""

    name: str
    description: str
    needs_adapter: bool = False


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("merged", "full weights in one transformers folder (vLLM, TGI, from_pretrained)"),
        ExportFormat("adapter", "the PEFT adapter folder with its tokenizer (small; load it on the base)", True),
        ExportFormat("gguf", "GGUF f16 for llama.cpp and LM Studio, with an Ollama Modelfile"),
        ExportFormat("gguf-q8_0", "GGUF q8_0 (8-bit, about half the size of f16), with an Ollama Modelfile"),
        ExportFormat("gguf-adapter", "the LoRA adapter as a GGUF adapter for llama.cpp --lora", True),
        ExportFormat("onnx", "ONNX decoder with KV cache for onnxruntime (through optimum)"),
    )
}
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _usage(fmt: str, folder: Path, base: str) -> tuple[str, list[str]] | None:
    here = json.dumps(str(folder.name))
    if fmt.startswith("gguf-q") or fmt == "gguf":
        name = "model-q8_0.gguf" if fmt == "gguf-q8_0" else "model-f16.gguf"
        return "bash", [f"llama-cli -m {name} -cnv   # llama.cpp, chat template from the GGUF",
                        "ollama create my-model -f Modelfile && ollama run my-model",
                        f"python -c \"from llama_cpp import Llama; print(Llama('{name}').create_chat_completion("
                        "[{'role': 'user', 'content': 'Hi'}], temperature=0))\""]  # fmt: skip
    if fmt == "gguf-adapter":
        return "bash", [f"tunelab export {base} -o base-gguf --format gguf   # the base model as GGUF",
                        "llama-cli -m base-gguf/model-f16.gguf --lora adapter.gguf -cnv"]  # fmt: skip
    if fmt == "onnx":
        return "python", ["from optimum.onnxruntime import ORTModelForCausalLM",
                          "from transformers import AutoTokenizer", "",
                          f"model = ORTModelForCausalLM.from_pretrained({here})",
                          f"tokenizer = AutoTokenizer.from_pretrained({here})"]  # fmt: skip
    return None


def _write_card(parts: ModelParts, fmt: str, folder: Path) -> None:
    config, summary, evaluation = run_documents(parts.adapter or parts.base)
    if fmt != "adapter":
        summary = {**summary, "adapter": False}
    tags = ("gguf",) if fmt.startswith("gguf") else (("onnx",) if fmt == "onnx" else ())
    base = str(config.get("model") or parts.base)
    card = render_model_card(config, summary, evaluation, title=f"{summary.get('name') or folder.name} ({fmt})",
                             usage=_usage(fmt, folder, base), extra_tags=tags)  # fmt: skip
    (folder / "README.md").write_text(card, encoding="utf-8")


def _plain_weights(parts: ModelParts, source: str, scratch: Path) -> Path:
    """A plain fp32 model folder: the merged model, or the base folder itself without an adapter."""
    if parts.adapter is None:
        return parts.base
    scratch.mkdir()
    build_merged(parts, "fp32", source, scratch)
    return scratch


def _build(parts: ModelParts, fmt: str, dtype: str, source: str, folder: Path, stage: Stage) -> None:
    from tunelab.export import gguf, ollama, onnx

    scratch = folder / ".merged"
    if fmt == "merged":
        stage("merging", 0.2)
        build_merged(parts, dtype, source, folder)
    elif fmt == "adapter":
        assert parts.adapter is not None
        for file in sorted(parts.adapter.iterdir()):
            if file.is_file() and file.name != "README.md":
                shutil.copy2(file, folder / file.name)
        if not (folder / "tokenizer_config.json").exists():
            load_tokenizer(parts.tokenizer, pad_fallback=False).save_pretrained(folder)
    elif fmt in ("gguf", "gguf-q8_0"):
        stage("merging", 0.1)
        weights = _plain_weights(parts, source, scratch)
        quant = "q8_0" if fmt == "gguf-q8_0" else "f16"
        stage("writing gguf", 0.5)
        name = f"model-{quant}.gguf"
        gguf.write_model_gguf(weights, folder / name, quant=quant, name=folder.name)
        tokenizer = load_tokenizer(weights, pad_fallback=False)
        (folder / "Modelfile").write_text(ollama.render_modelfile(tokenizer, name), encoding="utf-8")
    elif fmt == "gguf-adapter":
        assert parts.adapter is not None
        stage("writing gguf", 0.3)
        gguf.write_adapter_gguf(parts.adapter, parts.base, folder / "adapter.gguf", name=folder.name)
    elif fmt == "onnx":
        stage("merging", 0.1)
        weights = _plain_weights(parts, source, scratch)
        stage("writing onnx", 0.4)
        onnx.write_onnx(weights, folder)
    shutil.rmtree(scratch, ignore_errors=True)
    stage("model card", 0.95)
    _write_card(parts, fmt, folder)
    provenance = {"format": fmt, "source": source, "base": str(parts.base), "tunelab_version": __version__,
                  "adapter": str(parts.adapter) if parts.adapter else None}  # fmt: skip
    (folder / "tunelab_export.json").write_text(json.dumps(provenance, indent=2) + "\n")


def check_format(fmt: str, dtype: str = "auto") -> ExportFormat:
    """The format named ``fmt``, or ``InvalidInput`` listing the known ones."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    if dtype not in DTYPES:
        raise InvalidInput(f"unknown export dtype {dtype!r}", f"use one of {', '.join(DTYPES)}")
    return FORMATS[fmt]


def export_model(
    source: str | Path,
    out_dir: str | Path,
    *,
    fmt: str = "merged",
    dtype: str = "auto",
    progress: bool = True,
    on_stage: Stage | None = None,
) -> Path:
    """Write ``source`` (run directory, output or adapter folder, model id) as ``fmt`` into the new ``out_dir``."""
    spec = check_format(fmt, dtype)
    check_target(out_dir)
    stage: Stage = on_stage or (lambda _name, _fraction: None)
    stage("locating", 0.0)
    parts = locate(str(source), progress=progress)
    if spec.needs_adapter and parts.adapter is None:
        raise InvalidInput(f"{source} has no adapter to export as `{fmt}`",
                           "export a run made with an adapter method (lora, qlora, dora), or use `merged`")  # fmt: skip
    if fmt != "adapter":
        check_mergeable(parts)
    chosen = stored_precision(parts.base) if dtype == "auto" else dtype
    folder = write_folder(out_dir, lambda tmp: _build(parts, fmt, chosen, str(source), tmp, stage))
    stage("done", 1.0)
    return folder
