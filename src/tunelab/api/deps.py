"""Request dependencies, as ``Annotated`` aliases routes put in their signatures.

``SessionDep`` opens one store session per request and closes it afterwards;
``ReadScope``/``TrainScope``/``AdminScope`` check the bearer token (see
``auth.py``). They take an ``HTTPConnection`` so WebSocket routes can use them too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from tunelab.api.auth import Principal, principal, require_scope
from tunelab.api.shared_reads import SharedReads
from tunelab.jobs.paths import PathAccess, api_access
from tunelab.settings import Settings

T = TypeVar("T")


def get_settings_dep(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


async def get_session(conn: HTTPConnection) -> AsyncIterator[Session]:
    """A session for the request, made on the event loop (making one opens no connection).

    Async so that a request costs one hop to the thread pool fewer; closing
    hands the connection back to the pool (a rollback), which can wait on the
    database, so that runs in the pool.
    """
    factory: sessionmaker[Session] = conn.app.state.sessions
    session = factory()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()  # holds no connection (closed already, or never used): nothing to wait for


async def read_in_pool(session: Session, read: Callable[[Session], T]) -> T:
    """Run ``read(session)`` and close the session in one trip to the thread pool.

    A sync route costs three trips (the route, FastAPI's check of the answer,
    handing the connection back); the hot read routes (the job list, one job,
    its metrics and events, which every open dashboard polls) are async and
    do their store work in this one, so under load they wait for the pool
    once, not three times.
    """

    def run() -> T:
        with session:
            return read(session)

    return await run_in_threadpool(run)


async def shared_read(
    conn: HTTPConnection, session: Session, key: Hashable, read: Callable[[Session], Any], model: type[BaseModel]
) -> Response:
    """``read`` as JSON in ``model``'s shape, shared with the identical reads in flight (``shared_reads.py``).

    The answer is checked and encoded once per flight, as FastAPI would have
    done for ``response_model`` on every request, and returned as bytes; the
    route keeps ``response_model`` for its OpenAPI schema.
    """
    reads: SharedReads = conn.app.state.shared_reads

    async def compute() -> bytes:
        data = await read_in_pool(session, read)
        return model.__pydantic_serializer__.to_json(model.model_validate(data), by_alias=True)

    return Response(await reads.answer(key, compute), media_type="application/json")


def get_path_access(conn: HTTPConnection) -> PathAccess:
    """Which server paths this caller may name in a job: none, unless an admin and TUNELAB_ALLOW_SERVER_PATHS."""
    return api_access(conn.app.state.settings, admin="admin" in principal(conn).scopes)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ServerPaths = Annotated[PathAccess, Depends(get_path_access)]
SessionDep = Annotated[Session, Depends(get_session)]
ReadScope = Annotated[Principal, Depends(require_scope("read"))]
TrainScope = Annotated[Principal, Depends(require_scope("train"))]
AdminScope = Annotated[Principal, Depends(require_scope("admin"))]
