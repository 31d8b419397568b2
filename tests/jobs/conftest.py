"""Job test fixtures; the database ones come from tests/db_fixtures.py."""

from __future__ import annotations

from pathlib import Path

import pytest


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
