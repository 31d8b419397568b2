"""Fixtures for engine tests: small datasets and a config factory for the tiny model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def identity_file(tmp_path: Path) -> Path:
    """32 identity rows (alpaca shape) in a JSON file."""
    rows = json.loads((EXAMPLES / "data" / "identity.json").read_text())[:32]
    path = tmp_path / "identity.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture
def make_config(tiny_model_dir: Path, identity_file: Path) -> Callable[..., Any]:
    """A fast TrainConfig for the tiny model; keyword arguments override fields."""
    from tunelab.training import TrainConfig

    def build(**overrides: Any) -> TrainConfig:
        base: dict[str, Any] = {
            "model": str(tiny_model_dir), "dataset": str(identity_file), "method": "lora",
            "batch_size": 8, "epochs": 2, "max_length": 128, "learning_rate": 5e-3,
            "warmup_ratio": 0.0, "eval_split": 0.1, "save_steps": 0,
            "output": {"eval_generations": 1, "max_new_tokens": 4},
        }
        base.update(overrides)
        return TrainConfig.model_validate(base)

    return build


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
