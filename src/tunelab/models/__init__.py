"""The model runtime: catalog, resolution to local folders, device and precision, loading,
merging and memory estimates.

``resolve_model`` is what the training engine, evaluation and serving call to
get a loadable Hugging Face folder; ``precision.resolve`` turns ``auto`` into a
device and dtype once for all of them; ``loading`` loads a base model, an
adapter and a tokenizer through one function each; ``merge.merge_adapter`` is
the only merge. Nothing here imports torch at import time.
"""

from tunelab.models.catalog import BUILTIN_MODELS, ModelInfo, ModelSource
from tunelab.models.loading import (
    ModelParts,
    load_adapter,
    load_base_model,
    load_parts,
    load_tokenizer,
    locate,
    resolve_model_path,
)
from tunelab.models.memory import MemoryEstimate, estimate_memory
from tunelab.models.merge import merge_adapter
from tunelab.models.precision import torch_dtype
from tunelab.models.resolve import is_available, list_models, model_info, resolve_model

__all__ = [
    "BUILTIN_MODELS",
    "MemoryEstimate",
    "ModelInfo",
    "ModelParts",
    "ModelSource",
    "estimate_memory",
    "is_available",
    "list_models",
    "load_adapter",
    "load_base_model",
    "load_parts",
    "load_tokenizer",
    "locate",
    "merge_adapter",
    "model_info",
    "resolve_model",
    "resolve_model_path",
    "torch_dtype",
]
