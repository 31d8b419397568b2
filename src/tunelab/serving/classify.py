"""Classifiers and regressors at inference: text (or a text pair) in, label and scores out.

``POST /v1/classify``, ``tunelab classify`` and the SDK all come here. The model
is found and loaded by the model runtime (``tunelab.models.loading``: a
classifier adapter brings its ``labels.json``, an exported folder its
``id2label``), so what is served is exactly what training saved. Loaded
classifiers are kept, the most recent ``capacity`` of them, and one request at
a time runs per model (a second waits for the lock: the cores are shared anyway).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.errors import InvalidInput
from tunelab.models.loading import folder_task, load_parts, locate

#: The longest text accepted, in characters (a request is refused before tokenising beyond it).
MAX_INPUT_CHARS = 100_000


@dataclass
class Classifier:
    """A loaded sequence classifier (or regressor), its tokenizer and its label names in id order."""

    model: Any
    tokenizer: Any
    task: str  # classification | regression
    labels: list[str]

    def classify(self, text: str, text_pair: str | None = None) -> dict[str, Any]:
        """``{"label", "scores"}`` (softmax per label name), or for regression ``{"label": None, "value"}``."""
        import torch

        for value in (text, text_pair or ""):
            if len(value) > MAX_INPUT_CHARS:
                raise InvalidInput(f"input has {len(value):,} characters; the limit is {MAX_INPUT_CHARS:,}",
                                   "send a shorter text (the model sees at most its context anyway)")  # fmt: skip
        limit = getattr(self.model.config, "max_position_embeddings", 512)
        batch = self.tokenizer(text, text_pair, truncation=True, max_length=limit, return_tensors="pt")
        batch = {k: v.to(next(self.model.parameters()).device) for k, v in batch.items()}
        with torch.no_grad():
            logits = self.model(**batch).logits.float()[0]
        if self.task == "regression":
            return {"label": None, "value": float(logits.view(-1)[0]), "scores": {}}
        probs = torch.softmax(logits, -1).tolist()
        scores = {self.labels[i] if i < len(self.labels) else str(i): p for i, p in enumerate(probs)}
        best = max(range(len(probs)), key=probs.__getitem__)
        return {"label": self.labels[best] if best < len(self.labels) else str(best), "scores": scores}


def load_classifier(location: str | Path, *, precision: str = "auto", progress: bool = False) -> Classifier:
    """Load a run directory, classifier adapter or classifier folder; a generative model is refused."""
    parts = locate(str(location), progress=progress)
    task = folder_task(parts)
    if task not in ("classification", "regression"):
        raise InvalidInput(
            f"{location} is a {task} model; classify needs a classification or regression model",
            "train one with `task: classification` (or regression), or chat with this model instead",
            code="not_a_classifier",
        )
    model, tokenizer = load_parts(parts, precision=precision)
    names = model.config.id2label or {}
    labels = [str(names.get(i, names.get(str(i), i))) for i in range(model.config.num_labels)]
    return Classifier(model, tokenizer, task, labels)


class LoadedClassifiers:
    """Loaded classifiers by location, least recently used dropped beyond ``capacity``."""

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = max(1, capacity)
        self._models: OrderedDict[str, tuple[Classifier, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, location: str) -> tuple[Classifier, threading.Lock]:
        with self._lock:
            if location in self._models:
                self._models.move_to_end(location)
                return self._models[location]
            loaded = (load_classifier(location), threading.Lock())
            while len(self._models) >= self.capacity:
                self._models.popitem(last=False)
            self._models[location] = loaded
            return loaded

    def classify(self, location: str, text: str, text_pair: str | None = None) -> dict[str, Any]:
        classifier, lock = self.get(location)
        with lock:
            return classifier.classify(text, text_pair)
