"""Live job streams: WebSocket ``/ws/jobs/{id}`` and SSE ``/api/jobs/{id}/stream``.

Both replay the job's ``job_events`` rows (status changes, engine events, log
lines, metrics, resource samples) in id order, starting after a cursor:
``?after=N`` or SSE's ``Last-Event-ID``. The event id *is* the cursor, so a
client that reconnects with the last id it saw misses nothing and sees nothing
twice. The stream reads only the store, so training never depends on a client,
and the API may restart while a worker trains. A stream ends (``end`` message)
once the job is terminal and every event has been sent.

A stream holds no store connection while it waits: every poll opens a short
session, reads and closes it (``_fetch``), so a hundred open streams cost the
API's pool nothing between polls. A poll that meets a transient store error
(no free connection, a lock, a dropped link) waits with a bounded backoff and
polls again; the client sees a slower stream, never a broken one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from tunelab.api.auth import require_scope
from tunelab.api.deps import ReadScope
from tunelab.api.schemas import MAX_ID
from tunelab.errors import InvalidInput, TunelabError
from tunelab.jobs import service
from tunelab.jobs.states import JobStatus
from tunelab.store.retry import Backoff, describe, is_transient

router = APIRouter(tags=["streams"])
log = logging.getLogger("tunelab.api")
RETRY_MAX_S = 5.0  # longest pause between polls while the store is failing
POLL_S = 0.25
PING_S = 15.0
BATCH = 500


def _fetch(sessions: sessionmaker[Session], job_id: str, after: int) -> tuple[list[dict[str, Any]], str]:
    """Events after ``after`` and the job's status, read in one short session."""
    with sessions() as session:
        job = service.get_job(session, job_id)
        status = job.status
        rows = service.list_events(session, job_id, after=after, limit=BATCH)
        return [row.to_dict() for row in rows], status


def _check_job(sessions: sessionmaker[Session], job_id: str) -> None:
    """NotFound for an unknown job, in a session closed before the stream starts."""
    with sessions() as session:
        service.get_job(session, job_id)


async def follow(sessions: sessionmaker[Session], job_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
    """Yield events from the cursor on; a final ``{"type": "end"}`` when the job is done.

    The status is read *before* the events in the same session, so "terminal
    and nothing new" really means everything up to the terminal status was sent.
    """
    cursor = after
    backoff = Backoff(POLL_S, RETRY_MAX_S)
    while True:
        try:
            events, status = await run_in_threadpool(_fetch, sessions, job_id, cursor)
        except Exception as error:
            if not is_transient(error):
                raise
            delay = backoff.failed()
            log.warning("stream of %s: %s; polling again in %.1f s", job_id, describe(error), delay)
            await asyncio.sleep(delay)
            continue
        backoff.succeeded()
        for event in events:
            cursor = event["id"]
            yield event
        if not events and JobStatus(status).is_terminal():
            yield {"type": "end", "job_id": job_id, "status": status, "id": cursor}
            return
        if len(events) < BATCH:
            await asyncio.sleep(POLL_S)


def _cursor(after: int | None, last_event_id: str | None) -> int:
    value = after if after is not None else (last_event_id or 0)
    try:
        cursor = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"cursor {value!r} is not an event id", "pass the id of the last event you received"
        ) from None
    if not 0 <= cursor <= MAX_ID:
        raise InvalidInput(f"cursor must be 0 to {MAX_ID}", "pass the id of the last event you received")
    return cursor


def _sse(event: dict[str, Any]) -> str:
    kind = event.get("type", "message")
    data = json.dumps(event, separators=(",", ":"))
    return f"id: {event['id']}\nevent: {kind}\ndata: {data}\n\n"


@router.get(
    "/api/jobs/{job_id}/stream",
    summary="Server-sent events for a job (resume with Last-Event-ID or ?after=)",
    response_class=StreamingResponse,
)
async def stream_job_sse(
    job_id: str,
    request: Request,
    _: ReadScope,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Resume after this event id.")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    cursor = _cursor(after, last_event_id)
    sessions: sessionmaker[Session] = request.app.state.sessions
    await run_in_threadpool(_check_job, sessions, job_id)  # 404 before the stream starts; no session kept

    async def body() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        async for event in _with_pings(follow(sessions, job_id, cursor)):
            yield ": ping\n\n" if event is None else _sse(event)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


async def _with_pings(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any] | None]:
    """Pass events through; yield ``None`` when nothing came for ``PING_S`` (keep-alive)."""
    iterator = events.__aiter__()
    pending = asyncio.ensure_future(iterator.__anext__())
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=PING_S)
            if not done:
                yield None
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            yield event
            pending = asyncio.ensure_future(iterator.__anext__())
    finally:
        pending.cancel()


# Turns a job's stream into the messages one kind of socket sends: given the
# session factory, the job id and the cursor (in a worker thread), it returns a
# function from each stream event to a message, or None to skip the event.
Shaper = Callable[[sessionmaker[Session], str, int], Callable[[dict[str, Any]], dict[str, Any] | None]]


def _plain(sessions: sessionmaker[Session], job_id: str, _cursor: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    _check_job(sessions, job_id)
    return lambda event: event


async def serve_job_socket(websocket: WebSocket, job_id: str, after: int | None, shaper: Shaper) -> None:
    """The one WebSocket loop over a job's stream: auth, cursor, replay, errors, close.

    Every job socket (``/ws/jobs``, the guide's ``/ws/training``) differs only in
    how it shapes events, so the protocol (an ``error`` message then close code
    4000 + HTTP status; close 1000 after ``end``) is written once.
    """
    await websocket.accept()
    sessions: sessionmaker[Session] = websocket.app.state.sessions
    try:
        require_scope("read")(websocket)
        cursor = _cursor(after, websocket.headers.get("last-event-id"))
        shape = await run_in_threadpool(shaper, sessions, job_id, cursor)
        async for event in follow(sessions, job_id, cursor):
            message = shape(event)
            if message is not None:
                await websocket.send_json(message)
    except TunelabError as error:
        await websocket.send_json({"type": "error", "error": error.to_dict()})
        await websocket.close(code=4000 + _status(error))
        return
    except WebSocketDisconnect:
        return
    await websocket.close(code=1000)


@router.websocket("/ws/jobs/{job_id}")
async def stream_job_ws(websocket: WebSocket, job_id: str, after: int | None = None) -> None:
    """JSON messages, one per event; ``{"type": "end"}`` then close when the job is done.

    Errors (bad token, unknown job, bad cursor) arrive as one
    ``{"type": "error", "error": {...}}`` message before the socket closes.
    """
    await serve_job_socket(websocket, job_id, after, _plain)


def _status(error: TunelabError) -> int:
    from tunelab.errors import http_status

    return http_status(error)
