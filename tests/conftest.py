"""Shared fixtures: an isolated tunelab home and a tiny random model on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.db_fixtures", "tests.hub_fixtures"]


def _find_shared_datasets() -> Path:
    """The shared sample datasets: $TUNELAB_SHARED_DATASETS, ../shared/datasets, /work/shared."""
    candidates = [
        os.environ.get("TUNELAB_SHARED_DATASETS", ""),
        str(Path(__file__).resolve().parents[2] / "shared" / "datasets"),
        "/work/shared/datasets",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "alpaca_en_demo.json").exists():
            return Path(candidate)
    return Path(candidates[1])


SHARED_DATASETS = _find_shared_datasets()


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """Folder of the shared sample datasets; skips (with the reason) when it is absent."""
    if not (SHARED_DATASETS / "alpaca_en_demo.json").exists():
        pytest.skip(f"shared datasets not found (set TUNELAB_SHARED_DATASETS); looked in {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture(autouse=True)
def tunelab_home(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Path:  # fmt: skip
    """Each test gets its own TUNELAB_HOME so no test sees another's state.

    The tests' temporary folder is the one root where the local admin may name
    server paths (the tiny model, a test's dataset file), set here once for the
    in-process app and every server a test starts; tests of the refusal build
    their settings with ``allow_server_paths=[]``.
    """
    home = tmp_path / "tunelab-home"
    home.mkdir()
    monkeypatch.setenv("TUNELAB_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TUNELAB_ALLOW_SERVER_PATHS", json.dumps([str(tmp_path_factory.getbasetemp())]))
    from tunelab.settings import get_settings

    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def alpaca_texts() -> list[str]:
    path = SHARED_DATASETS / "alpaca_en_demo.json"
    if not path.exists():
        return []
    rows = json.loads(path.read_text())[:200]
    return [f"{r['instruction']} {r['input']} {r['output']}" for r in rows]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, alpaca_texts: list[str]) -> Path:
    """A tiny random Llama with a ChatML tokenizer, built once per test session."""
    from tunelab.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), alpaca_texts or None)
