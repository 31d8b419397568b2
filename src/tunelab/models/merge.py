"""Merging an adapter into its base: the one place it happens, in fp32, then cast once.

Folding ``B @ A`` into a bf16 weight rounds the sum to bf16 per layer; doing it
in fp32 and casting the finished model to the target dtype rounds once, at the
end, so a merged model is as close to "base + adapter" as its dtype allows. The
run's ``output/merged`` (``output.merge_adapter``) and ``tunelab export merged``
both call ``merge_adapter``; which methods may be merged at all is the method
registry's call (``tunelab.training.methods``), not this module's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.models.loading import (
    ModelParts,
    folder_task,
    load_adapter,
    load_base_model,
    read_labels,
)


def merge_adapter(base: str | Path, adapter: str | Path, precision: str, *, tokenizer: Any = None) -> Any:
    """The base model in ``base`` with the adapter in ``adapter`` folded in, cast to ``precision``.

    Loads a fresh fp32 copy of the base on the CPU (a model being trained is
    left untouched); ``tokenizer`` resizes the embeddings first when it grew.
    """
    from tunelab.models.precision import torch_dtype

    task = folder_task(ModelParts(Path(base), Path(adapter), Path(base)))  # a classifier keeps its head
    saved = read_labels(adapter)
    model = load_base_model(base, precision="fp32", task=task, labels=saved.get("labels") if saved else None)
    model = load_adapter(model, adapter, tokenizer=tokenizer).merge_and_unload()
    return model.to(torch_dtype(precision))
