"""Shared fixtures: an isolated tunelab home and a tiny random model on disk."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op torch thread for tests that serve tiny models many times.

    The tiny model's steps are microseconds of work, and on a shared, loaded CPU
    OpenMP's thread hand-offs made each 1-token reply 30x slower (0.48 s against
    0.016 s measured here). Use with ``pytest.mark.usefixtures("one_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


@pytest.fixture(scope="session")
def identity_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The quick start's tuned model: examples/identity-lora.yaml as shipped, on the real SmolLM2, trained once.

    The example mixes a share of the alpaca demo into its identity rows and holds
    out examples/data/identity_heldout.json as its eval split; the only override
    is no intermediate checkpoints, which changes nothing the model learns.
    Training takes a few minutes on a CPU, so the acceptance tests that need it
    (tests/training/test_smollm2_identity.py, tests/export/test_same_answers.py,
    tests/evaluation/test_quickstart_quality.py) share this one run. Returns the
    engine's ``TrainResult``; the run is in ``result.run_dir``.
    """
    from tunelab.cli.train import load_train_config
    from tunelab.training import run_training

    root = tmp_path_factory.mktemp("identity-run")
    examples = Path(__file__).resolve().parents[1] / "examples"
    config = load_train_config(examples / "identity-lora.yaml", ["save_steps=0"])
    return run_training(config, root / "run")
