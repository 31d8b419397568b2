"""One store poller per job (``api/job_feeds.py``): every stream gets every event once, the store is read once.

The streams here follow a real SQLite store while a thread writes events to
it, as the worker does; the buffer is made small so that trimming, replays
from the store and a stream that falls behind all happen in a few events.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, sessionmaker
from tests.api.live import thread_server

from tunelab.api import create_app, job_feeds
from tunelab.jobs.events import add_event, list_events, set_status
from tunelab.jobs.service import get_job
from tunelab.settings import Settings


def _add_logs(sessions: sessionmaker[Session], job_id: str, count: int) -> list[int]:
    with sessions() as session:
        ids = [add_event(session, job_id, "log", {"line": f"line {i}"}).id for i in range(count)]
        session.commit()
        return ids


def _write_then_finish(sessions: sessionmaker[Session], job_id: str) -> None:
    """What a worker does: events in several commits, then the terminal status."""
    for _ in range(6):
        _add_logs(sessions, job_id, 4)
        time.sleep(0.05)
    with sessions() as session:
        set_status(session, get_job(session, job_id), "completed")
        session.commit()


def _all_ids(sessions: sessionmaker[Session], job_id: str) -> list[int]:
    with sessions() as session:
        return [row.id for row in list_events(session, job_id, limit=10_000)]


async def _collect(events: AsyncIterator[dict[str, Any]], delay_s: float = 0.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for event in events:
        out.append(event)
        if event.get("type") == "end":
            return out
        if delay_s:
            await asyncio.sleep(delay_s)  # a slow client: falls behind the buffer and replays from the store
    return out


@pytest.mark.timeout(60)
def test_every_stream_gets_every_event_after_its_cursor_once_in_order(
    sessions: sessionmaker[Session], make_job: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_feeds, "KEEP", 5)  # the buffer trims after five events
    monkeypatch.setattr(job_feeds, "BATCH", 3)  # replays and polls come in pages of three
    job_id = make_job("running")
    early = _add_logs(sessions, job_id, 10)

    async def run() -> list[list[dict[str, Any]]]:
        bogus = job_feeds.follow(sessions, job_id, 2**40)  # joins first: its cursor must not skew the feed
        first = asyncio.ensure_future(_collect(bogus))
        await asyncio.sleep(0.3)
        streams = [_collect(job_feeds.follow(sessions, job_id, 0)),
                   _collect(job_feeds.follow(sessions, job_id, early[4])),
                   _collect(job_feeds.follow(sessions, job_id, 0), delay_s=0.03)]  # fmt: skip
        writer = asyncio.to_thread(_write_then_finish, sessions, job_id)
        *seen, _ = await asyncio.wait_for(asyncio.gather(first, *streams, writer), timeout=45)
        return seen

    bogus, from_start, from_middle, slow = asyncio.run(run())
    stored = _all_ids(sessions, job_id)
    for events, cursor in ((from_start, 0), (from_middle, early[4]), (slow, 0)):
        assert [e["id"] for e in events[:-1]] == [i for i in stored if i > cursor]
        assert events[-1] == {"type": "end", "job_id": job_id, "status": "completed", "id": stored[-1]}
    assert [e["type"] for e in bogus] == ["end"]  # nothing after its cursor, then the end


@pytest.mark.timeout(30)
def test_the_feed_stops_when_its_last_stream_leaves(
    sessions: sessionmaker[Session], make_job: Callable[[str], str]
) -> None:
    job_id = make_job("running")

    async def run() -> tuple[int, int, bool]:
        streams = [job_feeds.follow(sessions, job_id, 0) for _ in range(3)]
        for stream in streams:
            assert (await anext(stream))["type"] == "status"
        feeds = job_feeds.open_feeds()
        poller = next(iter(job_feeds._FEEDS[asyncio.get_running_loop()].values()))._task
        for stream in streams:
            await stream.aclose()
        await asyncio.sleep(0.05)
        return feeds, job_feeds.open_feeds(), bool(poller and poller.done())

    assert asyncio.run(run()) == (1, 0, True)


SSE_STREAMS = 20
QUIET_S = 2.0


async def _open_streams_and_count(url: str, job_id: str, queries: list[str],
                                  sessions: sessionmaker[Session]) -> tuple[int, list[list[int]]]:  # fmt: skip
    async def ids(lines: AsyncIterator[str], count: int) -> list[int]:
        got: list[int] = []
        async for line in lines:
            if line.startswith("id: "):
                got.append(int(line[4:]))
                if len(got) == count:
                    return got
        return got

    limits = httpx.Limits(max_connections=SSE_STREAMS + 2)
    async with httpx.AsyncClient(base_url=url, timeout=20, limits=limits) as client:
        responses = [await client.send(client.build_request("GET", f"/api/jobs/{job_id}/stream"), stream=True)
                     for _ in range(SSE_STREAMS)]  # fmt: skip
        try:
            lines = [response.aiter_lines() for response in responses]
            await asyncio.wait_for(asyncio.gather(*(ids(each, 3) for each in lines)), timeout=20)  # the replay
            queries.clear()
            await asyncio.sleep(QUIET_S)
            quiet = len(queries)
            new = await asyncio.to_thread(_add_logs, sessions, job_id, 1)
            delivered = await asyncio.wait_for(asyncio.gather(*(ids(each, 1) for each in lines)), timeout=20)
            assert delivered == [new] * SSE_STREAMS
            return quiet, delivered
        finally:
            for response in responses:
                await response.aclose()


@pytest.mark.timeout(90)
def test_twenty_open_streams_cost_the_store_one_poller(
    tunelab_home: Path, make_job: Callable[[str], str], sessions: sessionmaker[Session]
) -> None:
    """While 20 SSE streams wait on a quiet job, the API reads the store as often as for one stream.

    Each poll is at most a few statements (BEGIN, the job, its events) and
    polls come at most every ``POLL_S``, on any machine; twenty streams each
    polling on their own (as before) ran twenty times that.
    """
    from tunelab.store.db import get_engine

    settings = Settings(home=tunelab_home, monitor_interval_s=0)
    job_id = make_job("running")
    app = create_app(settings)
    engine = get_engine(settings.resolved_database_url, "api", settings)
    queries: list[str] = []
    lock = threading.Lock()

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        with lock:
            queries.append(statement)

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        with thread_server(app) as url:
            quiet, _ = asyncio.run(_open_streams_and_count(url, job_id, queries, sessions))
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    one_poller = 4 * (QUIET_S / job_feeds.POLL_S + 2)  # four statements per poll, at most, for one feed
    assert 0 < quiet <= one_poller, (quiet, queries[:12])
