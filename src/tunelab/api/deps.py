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

from tunelab.api.auth import Principal, require_scope
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


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
ReadScope = Annotated[Principal, Depends(require_scope("read"))]
TrainScope = Annotated[Principal, Depends(require_scope("train"))]
AdminScope = Annotated[Principal, Depends(require_scope("admin"))]
