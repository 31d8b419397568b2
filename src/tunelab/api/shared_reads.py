"""Polled reads answered once for everybody: one store query and one JSON encoding.

Every open dashboard polls the same few reads (the job list, one job, its
metrics and events); a hundred of them ask the same question many times a
second, and each answer cost a trip to the thread pool, a query, pydantic's
check of the rows and an encoding (about 3 ms of server CPU). Two things share
that work:

* a read that arrives while the same read is being answered waits for that
  answer instead of making its own (one query per distinct read in flight);
* an answer is kept **while nothing has committed to the store since it was
  asked**, so it is never older than the newest data. On SQLite (the embedded
  default) the check is ``PRAGMA data_version`` on a connection of its own,
  which changes whenever any other connection, of this or any other process
  (a standalone ``tunelab worker``, the CLI), has committed; it costs
  microseconds on the event loop. On PostgreSQL the check is every commit of
  this process (an API write, the embedded worker's metrics and heartbeats),
  and as other processes' commits cannot be seen from here, an answer is kept
  for at most ``keep_s`` (``TUNELAB_READ_CACHE_S``, 0.5 s by default; 0 keeps
  none): that is how much later a standalone worker's progress can show.

A write through the API also starts a new generation when it answers (a
write that committed nothing included), so a client reads its own writes
whatever the database.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KEEP_S = 0.5
MAX_KEPT = 512  # answers kept at once: distinct searches and pages must not grow the server's memory

_commits = itertools.count(1)  # next() is atomic under the GIL: commits come from any thread
_last_commit = [0]


def store_committed(*_: Any) -> None:
    """A session of this process committed: every answer kept so far is out of date."""
    _last_commit[0] = next(_commits)


def watch_commits() -> None:
    """Listen to every store session's commits (once per process; ``create_app`` calls it)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    if not event.contains(Session, "after_commit", store_committed):
        event.listen(Session, "after_commit", store_committed)


class StoreVersion:
    """What changes whenever the store has a commit this process may not have seen (``None``: cannot tell).

    SQLite's ``data_version`` on a private autocommit connection: it changes
    when any other connection commits, here or in another process. Elsewhere
    ``None``, and answers then expire after ``keep_s``.
    """

    def __init__(self, database_url: str) -> None:
        import sqlite3

        from sqlalchemy.engine import make_url

        self._connection: sqlite3.Connection | None = None
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            try:
                self._connection = sqlite3.connect(url.database, timeout=0, isolation_level=None,
                                                   check_same_thread=False)  # fmt: skip
            except sqlite3.Error:
                self._connection = None

    @property
    def exact(self) -> bool:
        return self._connection is not None

    def current(self) -> Hashable:
        if self._connection is None:
            return None
        try:
            return int(self._connection.execute("PRAGMA data_version").fetchone()[0])
        except Exception:  # busy or gone: a value no answer was kept under, so the read is asked again
            return object()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class SharedReads:
    """Answers by (generation, key): the flight under way, or one kept since nothing has committed."""

    def __init__(self, keep_s: float = KEEP_S, version: StoreVersion | None = None, max_kept: int = MAX_KEPT) -> None:
        self.keep_s, self.max_kept = keep_s, max_kept
        self.version = version
        self._writes = 0  # API writes answered (a write that commits nothing still counts)
        self._flights: dict[tuple[Hashable, ...], asyncio.Future[bytes]] = {}
        self._kept: dict[tuple[Hashable, ...], tuple[float, bytes]] = {}
        self._kept_generation: tuple[Hashable, ...] = ()

    @property
    def generation(self) -> tuple[Hashable, ...]:
        store = self.version.current() if self.version is not None else None
        return store, _last_commit[0], self._writes

    def _fresh(self, answered_at: float) -> bool:
        if self.keep_s <= 0:
            return False
        exact = self.version is not None and self.version.exact
        return exact or time.monotonic() - answered_at < self.keep_s

    def new_generation(self) -> None:
        """A write has been answered: later reads must not join earlier flights or answers."""
        self._writes += 1

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    async def answer(self, key: Hashable, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        """The bytes of read ``key``: kept, from the flight already under way, or from a new one.

        The flight runs as its own task, shielded, so a client that leaves
        (its request cancelled) does not cancel the answer the others wait for.
        An error (a missing job) reaches every waiter, as it would have each,
        and is not kept.
        """
        generation = self.generation
        if generation != self._kept_generation:  # something committed: nothing kept is current
            self._kept.clear()
            self._kept_generation = generation
        slot = (*generation, key)
        kept = self._kept.get(slot)
        if kept is not None and self._fresh(kept[0]):
            return kept[1]
        flight = self._flights.get(slot)
        if flight is None:
            asked_at = time.monotonic()  # kept from when it was asked: it holds no later commit
            flight = asyncio.ensure_future(compute())
            self._flights[slot] = flight
            flight.add_done_callback(lambda done: self._done(slot, done, asked_at))
        return await asyncio.shield(flight)

    def _done(self, slot: tuple[Hashable, ...], done: asyncio.Future[bytes], asked_at: float) -> None:
        if self._flights.get(slot) is done:
            del self._flights[slot]
        if done.cancelled() or done.exception() is not None:  # retrieved: no "never retrieved" log
            return
        if self.keep_s > 0 and slot[:-1] == self.generation:  # nothing committed while it ran
            if len(self._kept) >= self.max_kept:
                del self._kept[next(iter(self._kept))]  # the oldest answer kept
            self._kept[slot] = (asked_at, done.result())


class WritesStartGenerations:
    """ASGI middleware: every HTTP request that may write starts a new read generation when it answers."""

    def __init__(self, app: ASGIApp, reads: SharedReads) -> None:
        self.app, self.reads = app, reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return

        async def marking_send(message: Any) -> None:
            if message["type"] == "http.response.start":  # the write is done: its answer starts
                self.reads.new_generation()
            await send(message)

        try:
            await self.app(scope, receive, marking_send)
        finally:
            self.reads.new_generation()
