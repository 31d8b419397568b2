"""One store poller per job, fanned out to every stream of that job.

Fifty open SSE streams on one job used to mean fifty loops each opening a
session four times a second: 200 queries a second that all returned the same
rows, and the CPU they took came out of the requests and the training. A
``JobFeed`` polls the store for its job once per ``POLL_S`` whatever the
number of streams, keeps the events it read in a bounded buffer and wakes
every waiting stream when new ones arrive. ``follow`` is what each stream
iterates:

* a stream whose cursor lies in or after the buffer takes its events from
  the buffer (no query of its own);
* a stream whose cursor lies before the buffer (a fresh page replaying a
  long history, or a client that fell behind while the buffer moved on)
  replays from the store in its own short sessions until it reaches the
  buffer, then joins it.

The buffer always holds *every* event of the job with ``floor < id <= head``
(the poller reads ``id > head`` in id order), so a stream that moves from the
store to the buffer at ``floor`` misses nothing and sees nothing twice. The
feed's starting point comes from the store (the job's newest event id), never
from a client's cursor, so a bogus ``?after=`` cannot skew it for others.

Feeds live per event loop and per session factory, start with their first
stream and stop (their poll task cancelled) when the last one leaves. A poll
that meets a transient store error backs off and polls again (streams slow
down, they do not break); any other error ends every stream of the feed with
it, as the single stream's own poll did before.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tunelab.jobs import service
from tunelab.jobs.states import JobStatus
from tunelab.store.models import JobEvent
from tunelab.store.retry import Backoff, describe, is_transient

log = logging.getLogger("tunelab.api")
T = TypeVar("T")
POLL_S = 0.25  # how often a job with open streams is read
RETRY_MAX_S = 5.0  # longest pause between polls while the store is failing
BATCH = 500  # events per query
KEEP = 2000  # events a feed keeps for its streams; older ones are replayed from the store


def fetch(sessions: sessionmaker[Session], job_id: str, after: int) -> tuple[list[dict[str, Any]], str]:
    """Events after ``after`` (at most ``BATCH``) and the job's status, read in one short session.

    The status is read *before* the events, so "terminal and nothing new"
    really means everything up to the terminal status was read.
    """
    with sessions() as session:
        status = service.get_job(session, job_id).status
        rows = service.list_events(session, job_id, after=after, limit=BATCH)
        return [row.to_dict() for row in rows], status


def _newest_id(sessions: sessionmaker[Session], job_id: str) -> int:
    with sessions() as session:
        newest = session.scalar(select(func.max(JobEvent.id)).where(JobEvent.job_id == job_id))
        return int(newest or 0)


def _terminal(status: str) -> bool:
    return JobStatus(status).is_terminal()


class JobFeed:
    """The events of one job, read by one poll task for all of its streams."""

    def __init__(self, sessions: sessionmaker[Session], job_id: str) -> None:
        self.sessions, self.job_id = sessions, job_id
        self.floor: int | None = None  # unknown until the first read of the store
        self.head = 0
        self.events: list[dict[str, Any]] = []
        self.ids: list[int] = []
        self.status = ""  # the job's status at the last poll
        self.ended = False  # the job is terminal and no event came after ``head``
        self.error: BaseException | None = None
        self.streams = 0
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- the poller ------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        try:
            self.head = await _retrying(self.job_id, _newest_id, self.sessions, self.job_id)
            self.floor = self.head
            self._notify()
            while not self.ended:
                events, status = await _retrying(self.job_id, fetch, self.sessions, self.job_id, self.head)
                self._add(events, status)
                if len(events) < BATCH:
                    await asyncio.sleep(POLL_S)
        except Exception as error:  # not transient (the job was deleted, a bug): every stream ends with it
            self.error = error
            self._notify()

    def _add(self, events: list[dict[str, Any]], status: str) -> None:
        self.status = status
        if events:
            self.events.extend(events)
            self.ids.extend(int(event["id"]) for event in events)
            self.head = self.ids[-1]
            if len(self.ids) > KEEP:
                cut = len(self.ids) - KEEP
                self.floor = self.ids[cut - 1]
                del self.events[:cut], self.ids[:cut]
            self._notify()
        elif _terminal(status):
            self.ended = True
            self._notify()

    def _notify(self) -> None:
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    # -- what a stream reads -----------------------------------------------------
    def after(self, cursor: int) -> list[dict[str, Any]]:
        """Buffered events with id > ``cursor`` (the cursor must be >= ``floor``)."""
        return self.events[bisect.bisect_right(self.ids, cursor) :]

    def waiter(self) -> asyncio.Event:
        """The event set at the next change; take it *before* reading, then wait on it."""
        return self._wake


_FEEDS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, str], JobFeed]] = (
    weakref.WeakKeyDictionary()
)


def _join(sessions: sessionmaker[Session], job_id: str) -> JobFeed:
    feeds = _FEEDS.setdefault(asyncio.get_running_loop(), {})
    feed = feeds.get((sessions, job_id))
    if feed is None or feed.error is not None:
        feed = feeds[(sessions, job_id)] = JobFeed(sessions, job_id)
        feed.start()
    feed.streams += 1
    return feed


def _leave(feed: JobFeed) -> None:
    feed.streams -= 1
    if feed.streams > 0:
        return
    feed.stop()
    feeds = _FEEDS.get(feed.loop, {})  # the feed's own loop: a stream may be closed late, by the garbage collector
    if feeds.get((feed.sessions, feed.job_id)) is feed:
        del feeds[(feed.sessions, feed.job_id)]


def open_feeds() -> int:
    """Feeds polling in this event loop (one per job with open streams)."""
    return len(_FEEDS.get(asyncio.get_running_loop(), {}))


async def _retrying(job_id: str, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` in the thread pool, again after a bounded backoff while the store fails transiently."""
    backoff = Backoff(POLL_S, RETRY_MAX_S)
    while True:
        try:
            return await run_in_threadpool(call, *args)
        except Exception as error:
            if not is_transient(error):
                raise
            delay = backoff.failed()
            log.warning("stream of %s: %s; polling again in %.1f s", job_id, describe(error), delay)
            await asyncio.sleep(delay)


async def follow(sessions: sessionmaker[Session], job_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
    """Yield the job's events after ``after`` in id order; a final ``{"type": "end"}`` when the job is done."""
    feed = _join(sessions, job_id)
    cursor = after
    try:
        while True:
            if feed.error is not None:
                raise feed.error
            wake = feed.waiter()
            if feed.floor is None:  # the feed has not read the store yet
                await wake.wait()
                continue
            if cursor < feed.floor:  # behind the buffer: replay from the store up to it
                floor = feed.floor
                events, status = await _retrying(job_id, fetch, sessions, job_id, cursor)
                for event in events:
                    cursor = event["id"]
                    yield event
                if not events and _terminal(status):
                    yield {"type": "end", "job_id": job_id, "status": status, "id": cursor}
                    return
                if len(events) < BATCH:  # every event up to the floor read then is now sent
                    cursor = max(cursor, floor)
                continue
            events = feed.after(cursor)
            for event in events:
                cursor = event["id"]
                yield event
            if events:
                continue  # more may have come while the client read these
            if feed.ended and cursor >= feed.head:
                yield {"type": "end", "job_id": job_id, "status": feed.status, "id": cursor}
                return
            await wake.wait()
    finally:
        _leave(feed)

