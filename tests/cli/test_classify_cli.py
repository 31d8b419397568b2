"""`tunelab classify MODEL TEXT [--json]` on real tiny runs: a classifier's label and scores, a regressor's value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.training.test_tasks import (
    NEGATIVE,
    POSITIVE,
    config_for,
    write_score_csv,
    write_sentiment_csv,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A BERT-shaped sentiment classifier and a regressor, trained a few steps each."""
    from tunelab.testing import build_tiny_encoder
    from tunelab.training import run_training

    root = tmp_path_factory.mktemp("classify-cli")
    model = build_tiny_encoder(root / "bert", [" ".join(POSITIVE + NEGATIVE)] * 8)
    found = {}
    for task, write in (("classification", write_sentiment_csv), ("regression", write_score_csv)):
        config = config_for(model, write(root / f"{task}.csv"), task=task, epochs=4, learning_rate=1e-2,
                            output={"evaluate": False})  # fmt: skip
        result = run_training(config, root / task)
        assert result.status == "completed", result.error
        found[task] = root / task
    return found


def _classify(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "tunelab", "classify", *args], capture_output=True, text=True,
                          timeout=300, env=env, check=False)  # fmt: skip


def _expected(run: Path, text: str) -> dict[str, object]:
    from tunelab.serving.classify import load_classifier

    return load_classifier(str(run), progress=False).classify(text)


def test_classify_prints_the_label_and_every_score(runs: dict[str, Path]) -> None:
    text = "the film was great love happy"
    done = _classify(str(runs["classification"]), text)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    expected = _expected(runs["classification"], text)
    assert lines[0] == f"label: {expected['label']}"
    shown = {line.split()[0]: float(line.split()[1]) for line in lines[1:]}
    assert set(shown) == {"negative", "positive"}
    for name, score in expected["scores"].items():  # type: ignore[union-attr]
        assert shown[name] == pytest.approx(score, abs=1e-4)
    assert list(shown) == sorted(shown, key=lambda n: -shown[n])  # likeliest first

    as_json = _classify(str(runs["classification"]), text, "--json")
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    body = json.loads(as_json.stdout)
    assert body["label"] == expected["label"] and body["scores"] == pytest.approx(expected["scores"], abs=1e-6)


def test_classify_a_regressor_prints_its_value(runs: dict[str, Path]) -> None:
    text = "great awful love"
    expected = _expected(runs["regression"], text)
    done = _classify(str(runs["regression"]), text)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"value: {expected['value']:.4f}"
    body = json.loads(_classify(str(runs["regression"]), text, "--json").stdout)
    assert body["label"] is None and body["scores"] == {} and body["value"] == pytest.approx(expected["value"], abs=1e-5)


def test_classify_a_generative_model_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    done = _classify(str(tiny_model_dir), "hello")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "causal_lm" in done.stderr and "Hint:" in done.stderr
    missing = _classify(str(tmp_path / "nowhere"), "hello")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr and "Hint:" in missing.stderr
