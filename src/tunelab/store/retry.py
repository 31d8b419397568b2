"""Transient store errors and the bounded exponential backoff every long-lived loop uses.

A worker, a supervisor tick or a stream poll that meets a pool timeout,
``database is locked``, ``disk is full`` or a dropped PostgreSQL connection must
not die of it: it logs, waits (0.5 s, 1 s, 2 s ... up to a cap) and tries again.
The classification and the waits live here, next to the engines, so the worker
(``jobs/worker.py``, ``jobs/supervisor.py``) and the API streams
(``api/routes/streams.py``) agree on what "transient" means.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import exc as sa_exc

from tunelab.errors import DatabaseBusy, DatabaseUnavailable

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")

#: Errors a retry can cure: no connection to be had, a lock, a dropped link, a full disk.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,  # locked, disk full, server gone, connection refused
    sa_exc.TimeoutError,  # the pool had no free connection in time
    sa_exc.InterfaceError,  # the driver lost its connection
    sa_exc.DisconnectionError,
)


def is_transient(error: BaseException) -> bool:
    """True for errors of the store that may pass by themselves (see ``TRANSIENT_ERRORS``)."""
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    return isinstance(error, sa_exc.DBAPIError) and bool(error.connection_invalidated)


def describe(error: BaseException) -> str:
    """One line for the log: the driver's first line, not SQLAlchemy's page of context."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip()


def user_error(error: BaseException) -> DatabaseUnavailable:
    """The user-facing 503 for a transient store error: ``database_busy`` for a pool timeout.

    The driver's own text stays in the server log: it can name hosts and files.
    """
    if isinstance(error, sa_exc.TimeoutError):
        return DatabaseBusy(
            "the server is busy: no database connection came free in time",
            "retry after the seconds in Retry-After; an operator can raise TUNELAB_API_POOL_SIZE "
            "or TUNELAB_API_POOL_OVERFLOW",
        )
    return DatabaseUnavailable(
        "the database is unavailable for a moment (locked, full or not answering)",
        "retry after the seconds in Retry-After; if it persists, check the database server and its disk",
    )


class Backoff:
    """Bounded exponential backoff: ``base_s`` doubled per consecutive failure, at most ``max_s``.

    Each wait is jittered down by up to a quarter, so workers that failed
    together do not retry in lock step.
    """

    def __init__(self, base_s: float = 0.5, max_s: float = 30.0) -> None:
        self.base_s, self.max_s = base_s, max(base_s, max_s)
        self.failures = 0

    def failed(self) -> float:
        """Count one more failure; returns the seconds to wait before the next try."""
        self.failures += 1
        delay = min(self.max_s, self.base_s * 2 ** min(self.failures - 1, 30))
        return delay * random.uniform(0.75, 1.0)

    def succeeded(self) -> None:
        self.failures = 0


def write_retrying(factory: sessionmaker[Session], write: Callable[[Session], T], what: str, *,
                   attempts: int = 6) -> T:  # fmt: skip
    """``write(session)`` committed in a transaction that holds SQLite's write lock from its start.

    For writers that run beside the worker and a sweep's driver, which commit
    every tick (an evaluation's thread). A deferred SQLite transaction that read first
    cannot become a writer once another connection has committed since
    (``database is locked`` at once, whatever ``busy_timeout`` says), so the
    lock is taken at BEGIN (``begin_write``), and a transient store error is
    retried with backoff. A row left ``queued`` or ``running`` by a lost write
    would keep whoever waits on it (a sweep's trial) waiting for good.
    """
    import time

    from tunelab.store.db import begin_write

    backoff = Backoff(1.0, 30.0)
    for attempt in range(1, attempts + 1):
        try:
            with factory() as session:
                begin_write(session)
                value = write(session)
                session.commit()
                return value
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts:
                raise
            wait_s = backoff.failed()
            logging.getLogger("tunelab.store").warning("%s failed (%s); retrying in %.1f s", what, describe(exc), wait_s)
            time.sleep(wait_s)
    raise AssertionError("unreachable")  # the last attempt returned or raised
