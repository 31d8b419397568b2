"""Fault-test fixtures: the job tests' dataset and config builders, and a fresh store per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from tests.jobs.conftest import dataset_file, make_config  # noqa: F401  (fixtures, shared)

from tunelab.store.db import init_db, session_factory


@pytest.fixture
def factory(tunelab_home: Path) -> sessionmaker[Session]:
    """The test home's SQLite store, migrated (real workers and engines need a file)."""
    url = f"sqlite:///{tunelab_home / 'tunelab.db'}"
    init_db(url)
    return session_factory(url)
