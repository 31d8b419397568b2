"""Which model a chat request means, and the loaded models the API shares.

A request names a model the way users see it in the studio: an entry of the
collection (tuned models are added there when their job completes), a job id,
or a built-in catalog id. The name is looked up, never used as a path, so an
API caller cannot make the server read an arbitrary folder.

Loading takes seconds and hundreds of MB, so loaded models are kept, at most
``capacity`` of them, dropping the least recently used. Each has a lock: one
generation at a time per model, since two would only split the same cores.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from tunelab.errors import InvalidInput, NotFound
from tunelab.models import BUILTIN_MODELS
from tunelab.serving.generation import ChatModel, load_chat_model
from tunelab.settings import Settings
from tunelab.store.models import Job, ModelEntry


def chat_location(session: Session, settings: Settings, name: str) -> str:
    """What ``load_chat_model`` should load for the model called ``name``."""
    entry = session.get(ModelEntry, name)
    if entry is not None:
        return entry.location or entry.id
    job = session.get(Job, name)
    if job is not None:
        output = Path(settings.runs_dir) / job.id / "output"
        if not output.is_dir():
            raise InvalidInput(
                f"job {job.id} has no trained model yet (status {job.status})",
                "chat with it once the job has completed",
            )
        return str(Path(settings.runs_dir) / job.id)
    if name in BUILTIN_MODELS:
        return name
    raise NotFound(
        f"model {name!r} is not in the collection, the catalog or the jobs",
        "list the models you can chat with: GET /v1/models",
    )


def chat_model_ids(session: Session) -> list[str]:
    """Every name ``chat_location`` accepts except job ids: built-ins, then the collection."""
    from sqlalchemy import select

    names = list(BUILTIN_MODELS)
    names += [n for n in session.scalars(select(ModelEntry.id).order_by(ModelEntry.added_at)) if n not in names]
    return names


class LoadedModels:
    """Loaded chat models by location, least recently used dropped beyond ``capacity``."""

    def __init__(self, capacity: int = 1) -> None:
        self.capacity = max(1, capacity)
        self._models: OrderedDict[str, tuple[ChatModel, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, location: str) -> tuple[ChatModel, threading.Lock]:
        with self._lock:
            if location in self._models:
                self._models.move_to_end(location)
                return self._models[location]
            while len(self._models) >= self.capacity:
                self._models.popitem(last=False)
            loaded = (load_chat_model(location, progress=False), threading.Lock())
            self._models[location] = loaded
            return loaded

    @contextmanager
    def use(self, location: str) -> Iterator[ChatModel]:
        """The loaded model for ``location``, held for this caller alone."""
        model, lock = self._get(location)
        with lock:
            yield model

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._models)
