"""Request dependencies, as ``Annotated`` aliases routes put in their signatures.

``SessionDep`` opens one store session per request and closes it afterwards;
``ReadScope``/``TrainScope``/``AdminScope`` check the bearer token (see
``auth.py``). They take an ``HTTPConnection`` so WebSocket routes can use them too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from tunelab.api.auth import Principal, require_scope
from tunelab.errors import InvalidInput
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

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+@:-]{0,199}$")


def check_name(value: str | None, field: str) -> str | None:
    """Reject names that look like paths; names are labels, never file names on disk."""
    if value is None or value == "":
        return value
    if "/" in value or "\\" in value or ".." in value or not _SAFE_NAME.match(value):
        raise InvalidInput(
            f"`{field}` {value!r} is not allowed: names may not contain '/', '\\\\', '..' "
            "or control characters",
            f"use letters, digits, spaces and . _ - + @ : for `{field}` (e.g. 'alpaca-demo')",
            details={"field": field},
        )
    return value
