"""Rows that chat reaches by name behind a prefix: experiments (``exp:NAME``) and ensembles (``ens:NAME``).

Both are stored once under a unique plain name (it goes into the model name,
URLs and headers), listed newest first and found by name or id. This module
is that shape, so the two agree on the name rule, on the 409 for a taken name
(also when two creates race past the first check) and on the 404 that says
where to look.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tunelab.errors import Conflict, InvalidInput, NotFound

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_HINT = "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

Row = TypeVar("Row")


def check_name(value: str, field: str) -> str:
    """A name that goes into ``exp:<name>`` or ``ens:<name>``, URLs and headers: a short plain name."""
    if not isinstance(value, str) or not NAME.match(value):
        raise InvalidInput(f"`{field}` {str(value)[:80]!r} is not a valid name", NAME_HINT)
    return value


def _article(kind: str) -> str:
    return "an" if kind[:1] in "aeiou" else "a"


def add_named(session: Session, row: Row, kind: str, hint: str) -> Row:
    """Store ``row`` (committed) unless its name is taken: a 409 with ``hint`` (a racing create: "choose another")."""
    model: Any = type(row)
    name = row.name  # type: ignore[attr-defined]
    taken = f"{_article(kind)} {kind} named {name!r} exists"
    if session.scalars(select(model).where(model.name == name)).first() is not None:
        raise Conflict(taken, hint)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # a concurrent create with the same name
        session.rollback()
        raise Conflict(taken, "choose another name") from None
    return row


def newest_first(session: Session, model: Any) -> list[Any]:
    """Every row of ``model``, the newest first."""
    return list(session.scalars(select(model).order_by(model.created_at.desc())))


def find_named(session: Session, model: Any, name: str, kind: str) -> Any:
    """The row named ``name`` (or with that id); a 404 that names the list route and command."""
    row = session.scalars(select(model).where(or_(model.name == name, model.id == name))).first()
    if row is None:
        raise NotFound(f"no {kind} {name[:80]!r}", f"list {kind}s: GET /api/{kind}s or `tunelab {kind}s list`")
    return row
