"""Request dependencies, as ``Annotated`` aliases routes put in their signatures.

``SessionDep`` opens one store session per request and closes it afterwards;
``ReadScope``/``TrainScope``/``AdminScope`` check the bearer token (see
``auth.py``). They take an ``HTTPConnection`` so WebSocket routes can use them too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from tunelab.api.auth import Principal, principal, require_scope
from tunelab.jobs.paths import PathAccess, api_access
from tunelab.settings import Settings


def get_settings_dep(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


def get_session(conn: HTTPConnection) -> Iterator[Session]:
    factory: sessionmaker[Session] = conn.app.state.sessions
    session = factory()
    try:
        yield session
    finally:
        session.close()


def get_path_access(conn: HTTPConnection) -> PathAccess:
    """Which server paths this caller may name in a job: none, unless an admin and TUNELAB_ALLOW_SERVER_PATHS."""
    return api_access(conn.app.state.settings, admin="admin" in principal(conn).scopes)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ServerPaths = Annotated[PathAccess, Depends(get_path_access)]
SessionDep = Annotated[Session, Depends(get_session)]
ReadScope = Annotated[Principal, Depends(require_scope("read"))]
TrainScope = Annotated[Principal, Depends(require_scope("train"))]
AdminScope = Annotated[Principal, Depends(require_scope("admin"))]
