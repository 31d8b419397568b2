"""Model catalog: built-in, local and Hub models, resolution to local folders, memory estimates.

``resolve_model`` is what the training engine, evaluation and serving call to
get a loadable Hugging Face folder; nothing here imports torch at import time.
"""

from tunelab.models.catalog import BUILTIN_MODELS, ModelInfo, ModelSource
from tunelab.models.memory import MemoryEstimate, estimate_memory
from tunelab.models.resolve import is_available, list_models, model_info, resolve_model

__all__ = [
    "BUILTIN_MODELS",
    "MemoryEstimate",
    "ModelInfo",
    "ModelSource",
    "estimate_memory",
    "is_available",
    "list_models",
    "model_info",
    "resolve_model",
]
