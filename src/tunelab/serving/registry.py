"""Which model a chat request means, and the loaded models the API shares.

A request names a model the way users see it in the studio: an entry of the
collection (tuned models are added there when their job completes), a job id,
or a built-in catalog id. The name is looked up, never used as a path, so an
API caller cannot make the server read an arbitrary folder.

Loading takes seconds and hundreds of MB, so loaded base models are kept, at
most ``capacity`` of them, dropping the least recently used; a tuned model's
LoRA adapter is loaded by name onto its base's engine (``serving.batching``),
whose scheduler batches every request for that base, adapters mixed. Each
location has a bounded queue (``ChatTicket``), so requests beyond it are
refused at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.errors import InvalidInput, ModelBusy, NotFound
from tunelab.models import BUILTIN_MODELS
from tunelab.models.loading import ModelParts, locate
from tunelab.serving.batching import MAX_BATCH, Engine
from tunelab.serving.generation import ChatModel, open_chat
from tunelab.settings import Settings
from tunelab.store.catalog import find_model
from tunelab.store.models import Job, ModelEntry


def chat_location(session: Session, settings: Settings, name: str) -> str:
    """What ``load_chat_model`` should load for the model called ``name``.

    ``name`` is a collection id (``ft:<base>:<name>:<job id>`` for tuned
    models) or display name, a job id, a job's name (the newest such job), or
    a built-in id: the names people see in the studio. ``ens:<name>`` is an
    ensemble (``serving.ensembles``), loaded as its members together.
    """
    if name.startswith("ens:"):
        from tunelab.serving import ensembles

        return ensembles.location(session, settings, name)
    entry = find_model(session, name)
    if entry is not None:
        return entry.location or entry.id
    job = _tuned_job(session, name) or session.get(Job, name) or session.scalars(
        select(Job).where(Job.name == name).order_by(Job.created_at.desc())
    ).first()
    if job is not None:
        run_dir = Path(job.run_dir) if job.run_dir else Path(settings.runs_dir) / job.id
        if not (run_dir / "output").is_dir():
            raise InvalidInput(
                f"job {job.id} has no trained model yet (status {job.status})",
                "chat with it once the job has completed",
            )
        return str(run_dir)
    if name in BUILTIN_MODELS:
        return name
    raise NotFound(
        f"model {name!r} is not in the collection, the catalog or the jobs",
        "list the models you can chat with: GET /v1/models",
    )


def parse_tuned_id(name: str) -> TunedId | None:
    """``ft:<base>:<name>:<job id>`` split into its parts; None for any other name (the one parser).

    ``store.catalog.tuned_model_id`` writes these ids with no ``:`` inside a
    part, so the first part is the base and the last the job id whatever the name holds.
    """
    if not name.startswith("ft:"):
        return None
    parts = name[3:].split(":")
    if len(parts) < 3 or not all(parts):
        return None
    return TunedId(base=parts[0], name=":".join(parts[1:-1]), job_id=parts[-1])


@dataclass(frozen=True)
class TunedId:
    base: str
    name: str
    job_id: str


def _tuned_job(session: Session, name: str) -> Job | None:
    """The job an ``ft:`` id names (when its collection entry is gone, or it never had one)."""
    tuned = parse_tuned_id(name)
    if tuned is None:
        return None
    job = session.get(Job, tuned.job_id)
    if job is None:
        raise NotFound(f"model {name!r} names job {tuned.job_id}, which does not exist",
                       "list the models you can chat with: GET /v1/models")  # fmt: skip
    return job


def chat_model_ids(session: Session) -> list[str]:
    """Every name ``chat_location`` accepts except job ids: built-ins, the collection, completed jobs' ``ft:`` ids."""
    from tunelab.store.catalog import tuned_model_id

    names = list(BUILTIN_MODELS)
    names += [n for n in session.scalars(select(ModelEntry.id).order_by(ModelEntry.added_at)) if n not in names]
    done = session.scalars(select(Job).where(Job.status == "completed").order_by(Job.created_at))
    for job in done:
        model = (job.config or {}).get("model")
        tuned = tuned_model_id(str(model), str((job.save_options or {}).get("model_name") or job.name or ""), job.id)
        if isinstance(model, str) and tuned not in names:
            names.append(tuned)
    from tunelab.store.models import Ensemble, Experiment

    names += ["ens:" + n for n in session.scalars(select(Ensemble.name).order_by(Ensemble.created_at))]
    names += ["exp:" + n for n in session.scalars(select(Experiment.name).where(Experiment.status == "running")
                                                  .order_by(Experiment.created_at))]  # fmt: skip
    return names


class ChatTicket:
    """One chat request's place in a model's queue: get the model, generate, leave.

    ``cancel`` is set when the client leaves or the server shuts down; the
    scheduler drops the request's row before its next step. While a ticket is
    open its adapter is pinned, so the adapter LRU never unloads it mid-reply.
    """

    def __init__(self, owner: LoadedModels, location: str) -> None:
        self.owner, self.location = owner, location
        self.cancel = threading.Event()
        self._closed = False
        self._chat: ChatModel | None = None

    def wait(self) -> ChatModel:
        """The model for this request (loaded now if needed); ``ChatCancelled`` if cancelled meanwhile."""
        if self.cancel.is_set():
            raise ChatCancelled("the chat request was cancelled while waiting", "send it again")
        if self._chat is None:
            self._chat = self.owner._get(self.location, pin=True)
        return self._chat

    def close(self) -> None:
        """Give the place back (idempotent; any thread)."""
        if not self._closed:
            self._closed = True
            chat, self._chat = self._chat, None
            if chat is not None and chat.adapter is not None and chat.parts.adapter is not None:
                chat.engine.unpin(chat.parts.adapter)
            self.owner._leave(self)

    @contextmanager
    def turn(self) -> Iterator[ChatModel]:
        """``wait`` then ``close``: the model's place held for this request while the block runs."""
        try:
            yield self.wait()
        finally:
            self.close()


class ChatCancelled(ModelBusy):
    """A request cancelled (client gone, server stopping) before it got the model: 503, retry."""

    code = "chat_cancelled"


class LoadedModels:
    """Loaded engines, least recently used dropped beyond ``capacity``; requests share each one's batch.

    A location (what ``chat_location`` or ``serve-model`` names) is a base
    model, or a LoRA adapter that rides on its base's engine under a name (at
    most ``max_adapters`` per base); other adapters get an engine of their own.
    At most ``queue_size`` requests per location are running or waiting; one
    more is ``ModelBusy`` (503 with ``Retry-After``) at once, so a burst of
    chats can never pile up threads until the server stops answering.
    """

    def __init__(self, capacity: int = 1, queue_size: int = 8, *, max_adapters: int = 4,
                 max_batch: int = MAX_BATCH, precision: str = "auto") -> None:  # fmt: skip
        self.capacity = max(1, capacity)
        self.queue_size = max(1, queue_size)
        self.max_adapters, self.max_batch, self.precision = max_adapters, max_batch, precision
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._parts: dict[str, ModelParts] = {}
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._tickets: dict[str, set[ChatTicket]] = {}

    def _engine(self, key: str, parts: ModelParts) -> Engine:
        """The engine under ``key`` (made now if needed, dropping the least recently used beyond capacity)."""
        with self._lock:
            if key in self._engines:
                self._engines.move_to_end(key)
                return self._engines[key]
        engine = Engine(parts, precision=self.precision, max_adapters=self.max_adapters, max_batch=self.max_batch)
        with self._lock:
            while len(self._engines) >= self.capacity:
                self._engines.popitem(last=False)[1].close()  # running rows finish, then its loop ends
            self._engines[key] = engine
        return engine

    def _get(self, location: str, *, pin: bool = False) -> ChatModel:
        if location.startswith("ens:{"):  # an ensemble's members, answering as one (serving.ensemble_model)
            return self._ensemble(location)
        with self._load_lock:  # one load at a time; the ticket table stays answerable meanwhile
            parts = self._parts.get(location)
            if parts is None:
                parts = self._parts[location] = locate(location, progress=False)
            chat = open_chat(parts, self._engine)
            if pin and chat.adapter is not None and parts.adapter is not None:
                chat.engine.adapter(parts.adapter, pin=True)  # held until the ticket closes
            return chat

    def _ensemble(self, location: str) -> Any:
        """The loaded ensemble for ``location`` (the last one kept: members are whole models each)."""
        from tunelab.serving.ensemble_model import EnsembleChat, load_ensemble

        with self._load_lock:
            kept = getattr(self, "_ensembles", {})
            if location not in kept:
                kept = {location: EnsembleChat(*load_ensemble(location, precision=self.precision))}
                self._ensembles = kept
            return kept[location]

    def load(self, location: str) -> ChatModel:
        """The model for ``location``, loaded now if needed (to check a request before it waits)."""
        return self._get(location)

    def engines(self) -> list[Engine]:
        with self._lock:
            return list(self._engines.values())

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
        """The loaded model for ``location`` while this caller holds a place in its queue."""
        with self.enter(location).turn() as model:
            yield model

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._engines)


class ServedModels:
    """The fixed names ``tunelab serve-model`` answers to: its model folder and each ``--adapter NAME=PATH``.

    The standalone server serves what its command line named, nothing from the
    studio's collection; an unknown name (a mistyped adapter) is a 404 listing
    the names it does serve. ``ft:<base>:<name>:<job id>`` ids match by their
    name part, so a client configured with the studio's id works here too.
    """

    def __init__(self, base_name: str, base: str, adapters: dict[str, str]) -> None:
        self.base_name = base_name
        self.table = {base_name: base, **adapters}

    @property
    def default(self) -> str:
        """The name ``/generate`` uses when the request names none: the first adapter, else the base."""
        return next(iter(self.table)) if len(self.table) == 1 else list(self.table)[1]

    def ids(self) -> list[str]:
        return list(self.table)

    def location(self, name: str) -> str:
        tuned = parse_tuned_id(name)
        key = tuned.name if tuned and tuned.name in self.table else name
        if key not in self.table:
            raise NotFound(
                f"model {name!r} is not served here; this server serves {', '.join(map(repr, self.table))}",
                "use one of those names (GET /v1/models), or start serve-model with --adapter NAME=PATH",
            )
        return self.table[key]
