"""Automated mode's impossible inputs: each answers 422 naming the field, and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import assert_error

from tunelab.api import create_app
from tunelab.settings import Settings


@pytest.fixture
def api(tunelab_home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=tunelab_home, monitor_interval_s=0))) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"n_trials": 0}, "invalid_input", "n_trials"),  # a budget of 0 trials
        ({"budget_minutes": 0}, "invalid_input", "budget_minutes"),  # a budget of 0 minutes
        ({"colour": "blue"}, "invalid_input", "colour"),  # an unknown request field
        (
            {"hyperparameters": {"colour": "blue"}},
            "config_invalid",
            "colour",
        ),  # an unknown TrainConfig field
        ({"hyperparameters": {"batch_size": 1000}}, "config_invalid", "batch_size"),  # out of range
        ({"dataset": "no-such-dataset"}, "config_invalid", "no-such-dataset"),
    ],
)
def test_impossible_automated_requests_name_the_field(api: TestClient, tiny_model_dir: Path, dataset_file: Path,
                                                      overrides: dict[str, Any], code: str, field: str) -> None:  # fmt: skip
    body = {
        "model": str(tiny_model_dir),
        "dataset": str(dataset_file),
        "n_trials": 2,
        "run": True,
        **overrides,
    }
    error = assert_error(api.post("/api/sweeps/propose", json=body), 422, code)
    assert field in error["message"], error
    assert error["hint"]
    assert api.get("/api/sweeps").json()["count"] == 0  # nothing stored
