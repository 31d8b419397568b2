"""Live job streams: WebSocket ``/ws/jobs/{id}`` and SSE ``/api/jobs/{id}/stream``.

Both replay the job's ``job_events`` rows (status changes, engine events, log
lines, metrics, resource samples) in id order, starting after a cursor:
``?after=N`` or SSE's ``Last-Event-ID``. The event id *is* the cursor, so a
client that reconnects with the last id it saw misses nothing and sees nothing
twice. The stream reads only the store, so training never depends on a client,
and the API may restart while a worker trains. A stream ends (``end`` message)
once the job is terminal and every event has been sent.

A stream holds no store connection while it waits, and does not poll the
store itself: every stream of a job follows that job's one ``JobFeed``
(``api/job_feeds.py``), which reads the store in short sessions once per poll
interval, however many streams are open, and wakes them all. A poll that
meets a transient store error (no free connection, a lock, a dropped link)
waits with a bounded backoff and polls again; the client sees a slower
stream, never a broken one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from tunelab.api.auth import require_scope
from tunelab.api.deps import ReadScope
from tunelab.api.job_feeds import follow
from tunelab.api.schemas import MAX_ID
from tunelab.errors import InvalidInput, TunelabError
from tunelab.jobs import service

router = APIRouter(tags=["streams"])
PING_S = 15.0


def _check_job(sessions: sessionmaker[Session], job_id: str) -> None:
    """NotFound for an unknown job, in a session closed before the stream starts."""
    with sessions() as session:
        service.get_job(session, job_id)


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
    """One SSE message; orjson, since every open stream encodes every event (NaN becomes null, valid JSON)."""
    kind = event.get("type", "message")
    data = orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS).decode()
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
        await require_scope("read")(websocket)
        cursor = _cursor(after, websocket.headers.get("last-event-id"))
        shape = await run_in_threadpool(shaper, sessions, job_id, cursor)
        if not await _send_until_gone(websocket, follow(sessions, job_id, cursor), shape):
            return  # the client left: its loop ends now, not at the next event it would have been sent
    except TunelabError as error:
        await websocket.send_json({"type": "error", "error": error.to_dict()})
        await websocket.close(code=4000 + _status(error))
        return
    except WebSocketDisconnect:
        return
    await websocket.close(code=1000)


async def _send_until_gone(
    websocket: WebSocket, events: AsyncIterator[dict[str, Any]], shape: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> bool:
    """Send the shaped events until the stream ends (True) or the client disconnects (False).

    A quiet job sends nothing for minutes, so a client that left is noticed by
    listening for its disconnect, not by the next send failing: otherwise every
    departed socket kept polling the store until the job ended (fifty of them
    burned the CPU and held up SIGTERM).
    """

    async def send() -> None:
        async for event in events:
            message = shape(event)
            if message is not None:
                await websocket.send_json(message)

    async def gone() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # clients have nothing to say; whatever they send is ignored

    sending, listening = asyncio.ensure_future(send()), asyncio.ensure_future(gone())
    try:
        done, _ = await asyncio.wait({sending, listening}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, listening):
            task.cancel()
    if sending in done:
        sending.result()  # a TunelabError or a send to a closed socket surfaces here
        return True
    return False


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
