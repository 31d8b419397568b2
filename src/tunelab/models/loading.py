"""Find and load models: one function each for the base model, an adapter and a tokenizer.

Training, chat and serving, evaluation and export all load through here, so a
fix (a pad token, a resized embedding, the attention implementation) reaches
every one of them. Users point tunelab at whatever they have: a catalog id, a
Hub id, a model folder, a PEFT adapter folder or a whole tunelab run directory;
``locate`` turns that into (base weights, optional adapter, tokenizer) folders.
Nothing here imports torch, transformers or peft at import time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.errors import ModelUnavailable, NotFound, TunelabError
from tunelab.models.precision import Precision, dtype_name, resolve, torch_dtype
from tunelab.models.resolve import resolve_model


@dataclass(frozen=True)
class ModelParts:
    """Where the pieces of a model live on disk."""

    base: Path
    adapter: Path | None
    tokenizer: Path


#: The model families tunelab trains: per task the transformers auto class that loads it and
#: PEFT's ``task_type`` for its adapters. The engine's task registry (``training/tasks.py``)
#: builds on these; loading, merging and serving read them back from a saved folder.
TASK_MODELS: dict[str, tuple[str, str]] = {
    "causal_lm": ("AutoModelForCausalLM", "CAUSAL_LM"),
    "seq2seq": ("AutoModelForSeq2SeqLM", "SEQ_2_SEQ_LM"),
    "classification": ("AutoModelForSequenceClassification", "SEQ_CLS"),
    "regression": ("AutoModelForSequenceClassification", "SEQ_CLS"),
}
#: What the engine writes next to a classifier's weights: the task and the label names in id order.
LABELS_FILE = "labels.json"


def detect_task(model_dir: str | Path) -> str:
    """The task a model folder is built for, from its config.json alone (``task: auto``)."""
    from tunelab.models.catalog import task_from_config

    return task_from_config(json.loads((Path(model_dir) / "config.json").read_text()))


def read_labels(folder: str | Path) -> dict[str, Any] | None:
    """``{"task", "labels"}`` saved by the engine beside a classifier adapter, or None."""
    path = Path(folder) / LABELS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def folder_task(parts: ModelParts) -> str:
    """The task of what ``parts`` point at: the adapter's labels or PEFT task type, else the base's config."""
    if parts.adapter is not None:
        labels = read_labels(parts.adapter)
        if labels is not None:
            return str(labels["task"])
        task_type = json.loads((parts.adapter / "adapter_config.json").read_text()).get("task_type")
        for task, (_, peft_type) in TASK_MODELS.items():
            if peft_type == task_type:
                return task
    return detect_task(parts.base)


def head_kwargs(task: str, labels: list[str] | None) -> dict[str, Any]:
    """``from_pretrained`` arguments that size a classification or regression head."""
    if task == "regression":
        return {"num_labels": 1, "problem_type": "regression"}
    if task == "classification" and labels:
        return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                "label2id": {name: i for i, name in enumerate(labels)},
                "problem_type": "single_label_classification"}  # fmt: skip
    return {}


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


def resolve_model_path(name: str, *, progress: bool = False) -> Path:
    """A local Hugging Face folder for a catalog name, a local path or a Hub id.

    Every failure is a ``ModelUnavailable``, so the engine reports one error code
    whether the name was unknown, offline or not downloadable.
    """
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return path
    try:
        return Path(resolve_model(name, progress=progress))
    except ModelUnavailable:
        raise
    except TunelabError as exc:
        raise ModelUnavailable(exc.message, hint=exc.hint) from exc


def locate(name_or_path: str, *, progress: bool = True) -> ModelParts:
    """Base, adapter and tokenizer folders for a catalog id, model, adapter or run directory."""
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        base = resolve_model(name_or_path, progress=progress)
        return ModelParts(base=base, adapter=None, tokenizer=base)
    run_model = _run_model_name(path)
    output = path / "output"
    if output.is_dir() and ((output / "adapter_config.json").exists() or _is_hf_model(output)):
        path = output  # a tunelab run directory: use what it produced
    if (path / "adapter_config.json").exists():
        base = _adapter_base(path, run_model, progress)
        return ModelParts(base, path, path if _has_tokenizer(path) else base)
    base = resolve_model(str(path), progress=progress)
    return ModelParts(base=base, adapter=None, tokenizer=base)


def stored_precision(model_dir: Path) -> Precision:
    """The precision a model folder's weights were published in (fp32 when config.json does not say)."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return dtype_name(config.get("dtype") or config.get("torch_dtype") or "float32")


#: Compute dtypes a folder may hold a second copy of its weights in, as transformers' ``variant``
#: (``model.bf16.safetensors``). Loading fp32 weights as bf16 maps the whole fp32 file and casts
#: it: fp32 pages, bf16 copy and the model at once; the copy loads as it is stored.
DTYPE_VARIANTS = ("bf16",)


def variant_file(folder: str | Path, precision: str) -> Path:
    """Where a model folder keeps its weights in ``precision`` beside the published ones."""
    return Path(folder) / f"model.{precision}.safetensors"


def weights_variant(folder: str | Path, precision: str) -> str | None:
    """The ``variant`` to load ``folder``'s weights in ``precision`` from, or None for the published file.

    Only a folder whose published weights are in another dtype and that holds
    the copy has one (the built-in model's cache, ``models/builtin.py``).
    """
    path = Path(folder)
    if precision not in DTYPE_VARIANTS or not (path / "config.json").is_file():
        return None
    if stored_precision(path) == precision or not variant_file(path, precision).is_file():
        return None
    return precision


def write_dtype_copy(folder: str | Path, precision: str = "bf16") -> Path | None:
    """Save ``folder``'s fp32 weights once more in ``precision`` (the file ``weights_variant`` finds).

    Tensor by tensor, cast exactly as ``from_pretrained(dtype=...)`` casts them,
    so the loaded weights are the same bits; written under a temporary name and
    renamed, so a reader never sees half a file. Returns the new file, or None
    when there is nothing to do (already there, not fp32, sharded weights).
    """
    import os

    from safetensors import safe_open
    from safetensors.torch import save_file

    path = Path(folder)
    source, target = path / "model.safetensors", variant_file(path, precision)
    if target.exists() or not source.is_file() or stored_precision(path) != "fp32":
        return None
    dtype = torch_dtype(precision)
    with safe_open(str(source), framework="pt") as weights:
        metadata = weights.metadata() or {"format": "pt"}
        tensors = {name: _cast(weights.get_tensor(name), dtype) for name in weights.keys()}  # noqa: SIM118
    tmp = path / f".{target.name}.tmp-{os.getpid()}"
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _cast(tensor: Any, dtype: Any) -> Any:
    return tensor.to(dtype) if tensor.is_floating_point() else tensor


def load_tokenizer(name_or_path: str | Path, *, pad_fallback: bool = True) -> Any:
    """A tokenizer (with its chat template) from a folder, a GGUF file or folder, or a cached Hub name.

    ``pad_fallback`` sets the pad token to the end-of-sequence token when the
    tokenizer has none, which batching needs; export turns it off so a saved
    folder keeps the tokenizer exactly as published.
    """
    try:
        from transformers import AutoTokenizer

        path = Path(name_or_path).expanduser()
        ggufs = sorted(path.glob("*.gguf")) if path.is_dir() else []
        if ggufs and not _has_tokenizer(path):
            tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=ggufs[0].name)
        elif path.suffix == ".gguf" and path.is_file():
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        else:
            tokenizer = AutoTokenizer.from_pretrained(path if path.exists() else str(name_or_path))
    except Exception as exc:
        raise ModelUnavailable(
            f"cannot load tokenizer {str(name_or_path)!r}: {type(exc).__name__}: {exc}",
            hint="Give a local model folder, or a Hub model name already in the cache (offline mode).",
            code="tokenizer_unavailable",
        ) from None
    if pad_fallback and tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def quantization_config(compute_precision: str) -> Any:
    """NF4 4-bit weights with double quantization, computing in ``compute_precision`` (QLoRA)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch_dtype(compute_precision),
    )


def load_base_model(
    path: str | Path,
    *,
    precision: str,
    device: str | None = None,
    attention: str | None = None,
    quantize_4bit: bool = False,
    task: str = "causal_lm",
    labels: list[str] | None = None,
) -> Any:
    """The pretrained model for ``task`` stored in ``precision`` (fp32, bf16 or fp16).

    ``device`` moves it there (None leaves it on the CPU, for callers that add
    an adapter first); ``attention`` is transformers' ``attn_implementation``
    (None: its default); ``quantize_4bit`` loads the weights in NF4 on the first
    GPU, computing in ``precision``. ``task`` picks the auto class
    (``TASK_MODELS``); ``labels`` size a new classification head.
    """
    import transformers

    auto_class = getattr(transformers, TASK_MODELS[task][0])
    kwargs: dict[str, Any] = {"dtype": torch_dtype(precision), **head_kwargs(task, labels)}
    if attention is not None:
        kwargs["attn_implementation"] = attention
    if quantize_4bit:
        kwargs["quantization_config"] = quantization_config(precision)
        kwargs["device_map"] = {"": 0}
    elif variant := weights_variant(path, precision):
        kwargs["variant"] = variant  # the copy already in this dtype: no fp32 file mapped and cast
    if task == "causal_lm":
        model = auto_class.from_pretrained(path, **kwargs)
    else:
        # A new head (and a pooler the checkpoint lacks) is random: the engine trains and saves
        # these modules with the adapter, or a reload would draw other random weights.
        model, info = auto_class.from_pretrained(path, output_loading_info=True, **kwargs)
        model.tunelab_new_modules = sorted({key.rsplit(".", 1)[0] for key in info.get("missing_keys", [])})
    if device is not None and not quantize_4bit:
        model.to(device)
    return model


def load_adapter(model: Any, adapter: str | Path, *, tokenizer: Any = None, trainable: bool = False) -> Any:
    """``model`` with the PEFT adapter in ``adapter`` applied (not merged).

    A tokenizer that grew during training (added tokens) needs the embeddings
    resized first, or the adapter's saved embedding rows would not fit.
    """
    from peft import PeftModel

    if tokenizer is not None and len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    return PeftModel.from_pretrained(model, adapter, is_trainable=trainable)


def load_parts(parts: ModelParts, *, precision: str = "auto", device: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) ready for inference: base in the resolved dtype, adapter applied, eval mode."""
    chosen = resolve(device, precision)
    tokenizer = load_tokenizer(parts.tokenizer, pad_fallback=False)
    task = folder_task(parts)
    saved = read_labels(parts.adapter) if parts.adapter is not None else None
    labels = saved.get("labels") if saved else None
    model = load_base_model(parts.base, precision=chosen.precision, task=task, labels=labels)
    if parts.adapter is not None:
        model = load_adapter(model, parts.adapter, tokenizer=tokenizer)
    model.to(chosen.device)
    model.eval()
    return model, tokenizer
