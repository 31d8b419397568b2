"""Job test fixtures; the database ones come from tests/db_fixtures.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tunelab.jobs.worker import Worker
from tunelab.store.db import session_factory


@pytest.fixture
def dataset_file(tmp_path: Path) -> Path:
    """A small alpaca-style dataset file."""
    import json

    rows = [
        {"instruction": f"Say the number {i}.", "input": "", "output": f"The number is {i}."}
        for i in range(40)
    ]
    path = tmp_path / "numbers.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture
def make_config(dataset_file: Path):
    """Build a job configuration {model, dataset, hyperparameters}."""

    def build(model: str = "tiny", dataset: Path | str | None = None, **hyper: object) -> dict:
        return {"model": model, "dataset": str(dataset or dataset_file), "hyperparameters": hyper}

    return build


@pytest.fixture
def sqlite_factory(tunelab_home: Path) -> sessionmaker[Session]:
    """A session factory on the test home's SQLite file (real workers need a file, not memory)."""
    return session_factory(f"sqlite:///{tunelab_home / 'tunelab.db'}")


@pytest.fixture
def worker(sqlite_factory: sessionmaker[Session]) -> Worker:
    """A worker with fast ticks, for tests that drive the real engine."""
    return Worker(sqlite_factory, tick_s=0.2, sample_s=0.5, grace_s=20, lease_s=10)
