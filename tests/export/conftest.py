"""Export test fixtures: a small dataset and job configurations for it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Build a job configuration {model, dataset, hyperparameters} on a 40-row alpaca file."""
    rows = [
        {"instruction": f"Say the number {i}.", "input": "", "output": f"The number is {i}."}
        for i in range(40)
    ]
    path = tmp_path / "numbers.json"
    path.write_text(json.dumps(rows))

    def build(model: str = "tiny", **hyper: Any) -> dict[str, Any]:
        return {"model": model, "dataset": str(path), "hyperparameters": hyper}

    return build
