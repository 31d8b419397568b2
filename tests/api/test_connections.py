"""Store connections under load: open streams hold none, an exhausted pool answers 503 fast, health sees workers.

Servers are real (uvicorn on a free 127.0.0.1 port, ``tests/api/live.py``);
the API gets a deliberately small pool so that a stream holding a connection,
or a request waiting 30 s for one, would show.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from tests.api.conftest import assert_error
from tests.api.live import thread_server

from tunelab.api import create_app
from tunelab.settings import Settings

SSE_STREAMS = 12
WS_STREAMS = 4
STATUS_EVENTS = 3  # a running job's history: created, queued, running


def _small_pool(home: Path, **extra: Any) -> Settings:
    """Two API connections, no overflow: one stream holding a connection would starve the rest."""
    base: dict[str, Any] = {"api_pool_size": 2, "api_pool_overflow": 0, "api_pool_timeout_s": 2.0,
                            "monitor_interval_s": 0}  # fmt: skip
    return Settings(home=home, **(base | extra))


async def _sse_ids(lines: AsyncIterator[str], count: int) -> list[int]:
    """Read SSE lines until ``count`` events arrived; their ids."""
    ids: list[int] = []
    async for line in lines:
        if line.startswith("id: "):
            ids.append(int(line[4:]))
            if len(ids) == count:
                break
    return ids


async def _ws_ids(socket: Any, count: int) -> list[int]:
    return [json.loads(await socket.recv())["id"] for _ in range(count)]


def _add_log_event(sessions: sessionmaker[Session], job_id: str) -> int:
    from tunelab.jobs.events import add_event

    with sessions() as session:
        event = add_event(session, job_id, "log", {"line": "one more line"})
        session.commit()
        return event.id


async def _load(url: str, job_id: str, sessions: sessionmaker[Session]) -> list[float]:
    """Open every stream, read the job list 30 times while they stay open, then push one event to all."""
    from websockets.asyncio.client import connect

    async with httpx.AsyncClient(base_url=url, timeout=15) as client, contextlib.AsyncExitStack() as stack:
        sse = []
        for _ in range(SSE_STREAMS):
            response = await stack.enter_async_context(client.stream("GET", f"/api/jobs/{job_id}/stream"))
            assert response.status_code == 200
            sse.append(response.aiter_lines())
        sockets = [await stack.enter_async_context(connect(f"{url.replace('http', 'ws')}/ws/jobs/{job_id}"))
                   for _ in range(WS_STREAMS)]  # fmt: skip
        replayed = await asyncio.wait_for(
            asyncio.gather(*(_sse_ids(lines, STATUS_EVENTS) for lines in sse),
                           *(_ws_ids(socket, STATUS_EVENTS) for socket in sockets)), timeout=30)  # fmt: skip
        assert all(len(ids) == STATUS_EVENTS for ids in replayed)
        timings = []
        for _ in range(30):
            started = time.perf_counter()
            response = await client.get("/api/jobs")
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            assert response.json()["data"][0]["id"] == job_id
        new_id = await asyncio.to_thread(_add_log_event, sessions, job_id)
        delivered = await asyncio.wait_for(
            asyncio.gather(*(_sse_ids(lines, 1) for lines in sse), *(_ws_ids(socket, 1) for socket in sockets)),
            timeout=30,
        )
        assert delivered == [[new_id]] * (SSE_STREAMS + WS_STREAMS)  # every stream still open and live
        return timings


@pytest.mark.timeout(120)
def test_open_streams_hold_no_connection_and_reads_stay_fast(
    tunelab_home: Path, make_job: Callable[[str], str], sessions: sessionmaker[Session]
) -> None:
    job_id = make_job("running")
    with thread_server(create_app(_small_pool(tunelab_home))) as url:
        timings = asyncio.run(_load(url, job_id, sessions))
    # 16 open streams on a pool of 2: no read waited for the pool timeout (2 s)
    assert max(timings) < 1.0, timings


def test_exhausted_pool_fails_fast_with_503_and_retry_after(
    tunelab_home: Path, make_job: Callable[[str], str]
) -> None:
    from tunelab.store.db import get_engine

    settings = _small_pool(tunelab_home, api_pool_size=1, api_pool_timeout_s=0.5)
    job_id = make_job("running")
    with TestClient(create_app(settings)) as client:
        engine = get_engine(settings.resolved_database_url, "api", settings)
        with engine.connect():  # the API's only connection, taken on purpose
            for path in ("/api/jobs", f"/api/jobs/{job_id}/stream", "/api/health"):
                started = time.perf_counter()
                response = client.get(path)
                assert time.perf_counter() - started < 3.0
                error = assert_error(response, 503, "database_busy")
                assert response.headers["Retry-After"] == "1"
                assert "TUNELAB_API_POOL_SIZE" in error["hint"]
        assert client.get("/api/jobs").status_code == 200  # the connection is back: answers again


@pytest.mark.timeout(60)
def test_health_reports_worker_heartbeats_and_503_when_the_embedded_worker_stops(tunelab_home: Path) -> None:
    from tunelab.cli.serve import _workers, stop_workers

    settings = Settings(home=tunelab_home, monitor_interval_s=0)
    app = create_app(settings)
    started = _workers(1, settings, app)  # what `tunelab serve` starts: a worker thread on its own pool
    try:
        with thread_server(app) as url:
            body = httpx.get(f"{url}/api/health", timeout=10).json()
            assert body["status"] == "ok" and body["problems"] == []
            (worker,) = body["workers"]
            assert worker["alive"] is True and worker["last_heartbeat"] is not None
            assert worker["seconds_since_heartbeat"] < 5 and worker["consecutive_errors"] == 0
            stop_workers(started)  # the embedded worker thread ends
            response = httpx.get(f"{url}/api/health", timeout=10)
            error = assert_error(response, 503, "unhealthy")
            assert "is not running" in error["message"] and response.headers["Retry-After"] == "1"
            assert error["details"]["workers"][0]["alive"] is False
            assert httpx.get(f"{url}/health", timeout=10).status_code == 503  # the root alias agrees
    finally:
        stop_workers(started)


def test_health_turns_503_when_a_worker_loop_stalls(tunelab_home: Path) -> None:
    """A loop that stops ticking (here: an idle wait far longer than the limit) is reported as stalled."""
    import threading

    from tunelab.jobs.worker import Worker
    from tunelab.store.db import session_factory

    settings = Settings(home=tunelab_home, monitor_interval_s=0, worker_stale_s=1.5)
    app = create_app(settings)
    worker = Worker(session_factory(settings.resolved_database_url, role="worker", settings=settings),
                    settings=settings, poll_s=30)  # fmt: skip
    app.state.workers = [worker]
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    try:
        with TestClient(app) as client:
            deadline = time.monotonic() + 10
            while worker.last_tick is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.get("/api/health").status_code == 200
            time.sleep(2.0)
            error = assert_error(client.get("/api/health"), 503, "unhealthy")
            assert "has not ticked for" in error["message"]
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
