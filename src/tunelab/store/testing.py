"""Throw-away PostgreSQL databases for the store's test suite.

The same tests run on SQLite and PostgreSQL; for PostgreSQL each test session
creates a database with a unique name from the server's maintenance database
and drops it afterwards, so runs never see each other's rows.
"""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tunelab.store.models import Base

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    """Where the test PostgreSQL lives: $TUNELAB_TEST_POSTGRES_URL or the local default."""
    return os.environ.get("TUNELAB_TEST_POSTGRES_URL", DEFAULT_SERVER)


def postgres_reachable(url: str | None = None) -> str | None:
    """None when the server answers, else the reason it does not."""
    engine = create_engine(url or server_url(), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # any driver or network error means "skip"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        engine.dispose()


def create_database(prefix: str = "tunelab_test") -> str:
    """Create a fresh database on the test server; returns its URL."""
    base = make_url(server_url())
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop a database made by ``create_database`` (closing our pooled connections first)."""
    from tunelab.store.db import dispose_engines

    dispose_engines(url)
    target = make_url(url)
    admin = create_engine(make_url(server_url()), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()


def clear_tables(url: str) -> None:
    """Delete every row (children first) so each test starts empty."""
    from tunelab.store.db import get_engine

    with get_engine(url).begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
