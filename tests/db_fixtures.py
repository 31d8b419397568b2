"""Database fixtures shared by the store, jobs and API tests: SQLite and PostgreSQL.

Loaded as a plugin from tests/conftest.py so every test folder gets the same
throw-away PostgreSQL database per session instead of one per folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    from tunelab.store.testing import create_database, drop_database, postgres_reachable, server_url

    reason = postgres_reachable()
    if reason:
        pytest.skip(f"PostgreSQL not reachable at {server_url()} ({reason})")
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tunelab_home: Path) -> str:
    """A migrated, empty database: SQLite in the test's home, or the session's PostgreSQL."""
    from tunelab.store.db import init_db

    if request.param == "sqlite":
        url = f"sqlite:///{tunelab_home / 'tunelab.db'}"
        init_db(url)
        return url
    from tunelab.store.testing import clear_tables

    url = request.getfixturevalue("postgres_url")
    init_db(url)
    clear_tables(url)
    return url


@pytest.fixture
def factory(db_url: str) -> sessionmaker[Session]:
    from tunelab.store.db import session_factory

    return session_factory(db_url)


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session:
        yield session
