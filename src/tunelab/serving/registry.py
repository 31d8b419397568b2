"""Which model a chat request means, and the loaded models the API shares.

A request names a model the way users see it in the studio: an entry of the
collection (tuned models are added there when their job completes), a job id,
or a built-in catalog id. The name is looked up, never used as a path, so an
API caller cannot make the server read an arbitrary folder.

Loading takes seconds and hundreds of MB, so loaded models are kept, at most
``capacity`` of them, dropping the least recently used. Each has a lock: one
generation at a time per model, since two would only split the same cores; and
a bounded queue (``ChatTicket``), so requests beyond it are refused at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from tunelab.errors import InvalidInput, ModelBusy, NotFound
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


class ChatTicket:
    """One chat request's place in a model's queue: wait for the model, generate, leave.

    ``cancel`` is set when the client leaves or the server shuts down; the
    generation watches it (a stopping criterion) and a request still waiting
    for the model gives up its place.
    """

    def __init__(self, owner: LoadedModels, location: str) -> None:
        self.owner, self.location = owner, location
        self.cancel = threading.Event()
        self._closed = False
        self._held: threading.Lock | None = None

    def wait(self) -> ChatModel:
        """Block until the model is this request's alone; ``ChatCancelled`` if cancelled while waiting."""
        model, lock = self.owner._get(self.location)
        while not lock.acquire(timeout=0.1):
            if self.cancel.is_set():
                raise ChatCancelled("the chat request was cancelled while waiting", "send it again")
        self._held = lock
        return model

    def close(self) -> None:
        """Give the model and the place back (idempotent; any thread)."""
        held, self._held = self._held, None
        if held is not None:
            held.release()
        if not self._closed:
            self._closed = True
            self.owner._leave(self)

    @contextmanager
    def turn(self) -> Iterator[ChatModel]:
        """``wait`` then ``close``: the model held for this request while the block runs."""
        try:
            yield self.wait()
        finally:
            self.close()


class ChatCancelled(ModelBusy):
    """A request cancelled (client gone, server stopping) before it got the model: 503, retry."""

    code = "chat_cancelled"


class LoadedModels:
    """Loaded chat models by location, least recently used dropped beyond ``capacity``.

    At most ``queue_size`` requests per model are running or waiting; one more
    is ``ModelBusy`` (503 with ``Retry-After``) at once, so a burst of chats
    can never pile up threads until the server stops answering.
    """

    def __init__(self, capacity: int = 1, queue_size: int = 8) -> None:
        self.capacity = max(1, capacity)
        self.queue_size = max(1, queue_size)
        self._models: OrderedDict[str, tuple[ChatModel, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._tickets: dict[str, set[ChatTicket]] = {}

    def _get(self, location: str) -> tuple[ChatModel, threading.Lock]:
        with self._load_lock:  # one load at a time; the ticket table stays answerable meanwhile
            with self._lock:
                if location in self._models:
                    self._models.move_to_end(location)
                    return self._models[location]
            loaded = (load_chat_model(location, progress=False), threading.Lock())
            with self._lock:
                while len(self._models) >= self.capacity:
                    self._models.popitem(last=False)
                self._models[location] = loaded
            return loaded

    def load(self, location: str) -> ChatModel:
        """The model for ``location``, loaded now if needed (to check a request before it waits)."""
        return self._get(location)[0]

    def enter(self, location: str) -> ChatTicket:
        """A place in ``location``'s queue, or ``ModelBusy`` when all ``queue_size`` are taken."""
        with self._lock:
            tickets = self._tickets.setdefault(location, set())
            if len(tickets) >= self.queue_size:
                raise ModelBusy(
                    f"the model already has {len(tickets)} chat requests running or waiting "
                    f"(the limit is {self.queue_size})",
                    "retry after the Retry-After seconds, or raise TUNELAB_CHAT_QUEUE_SIZE on the server",
                    details={"queued": len(tickets), "limit": self.queue_size},
                )
            ticket = ChatTicket(self, location)
            tickets.add(ticket)
            return ticket

    def _leave(self, ticket: ChatTicket) -> None:
        with self._lock:
            self._tickets.get(ticket.location, set()).discard(ticket)

    def waiting(self, location: str) -> int:
        """Requests running or waiting for ``location``."""
        with self._lock:
            return len(self._tickets.get(location, ()))

    def cancel_all(self) -> None:
        """Stop every generation at its next token and every waiting request (the server is stopping)."""
        with self._lock:
            tickets = [ticket for group in self._tickets.values() for ticket in group]
        for ticket in tickets:
            ticket.cancel.set()

    @contextmanager
    def use(self, location: str) -> Iterator[ChatModel]:
        """The loaded model for ``location``, held for this caller alone (a place in its queue meanwhile)."""
        with self.enter(location).turn() as model:
            yield model

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._models)
