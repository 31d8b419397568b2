"""Sweep fixtures: a small dataset, a sweep request on the tiny model, fast workers and drivers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

#: Every trial shares these: a few short steps with evals in between (pruning reads them).
FAST = {"max_rows": 24, "max_length": 64, "batch_size": 2, "max_steps": 6, "eval_steps": 2,
        "save_steps": 2, "eval_max_rows": 4, "output": {"evaluate": False}}  # fmt: skip


@pytest.fixture
def dataset_file(tmp_path: Path) -> Path:
    rows = [{"instruction": f"Say the number {i}.", "input": "", "output": f"The number is {i}."} for i in range(40)]
    path = tmp_path / "numbers.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture
def sweep_request(tiny_model_dir: Path, dataset_file: Path) -> Callable[..., dict[str, Any]]:
    """A sweep over learning rate and LoRA rank on the tiny model; keyword arguments override."""

    def build(**overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": "numbers", "model": str(tiny_model_dir), "dataset": str(dataset_file),
            "hyperparameters": dict(FAST),
            "search": {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "lora.r": {"choices": [4, 8]}},
            "sampler": "tpe", "n_trials": 6,
        }  # fmt: skip
        body.update(overrides)
        return body

    return build


@pytest.fixture
def make_worker() -> Callable[[sessionmaker[Session]], Any]:
    from tunelab.jobs.worker import Worker

    return lambda factory: Worker(factory, tick_s=0.2, sample_s=1.0, grace_s=20, lease_s=10, poll_s=0.2)


@pytest.fixture
def make_driver() -> Callable[[sessionmaker[Session]], Any]:
    from tunelab.sweeps.driver import SweepDriver

    return lambda factory: SweepDriver(factory, tick_s=0.2, lease_s=5)
