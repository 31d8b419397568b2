"""Serving fixtures: a varied tiny base and two LoRA adapters of it, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.serving.helpers import build_adapter, build_varied_model


@pytest.fixture(scope="session")
def varied_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_varied_model(tiny_model_dir, tmp_path_factory.mktemp("varied"))


@pytest.fixture(scope="session")
def adapter_dirs(varied_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return build_adapter(varied_dir, root / "alpha", 11), build_adapter(varied_dir, root / "beta", 22, r=8)
