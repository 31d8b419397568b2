"""`POST /v1/classify` on a regressor: `{label: null, scores: {}, value}`, the value the model computes."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.training.test_tasks import NEGATIVE, POSITIVE, config_for, write_score_csv

from tunelab.api import create_app
from tunelab.settings import Settings


@pytest.fixture(scope="module")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT-shaped regressor (target: how many positive words), trained a few steps: its run directory."""
    from tunelab.testing import build_tiny_encoder
    from tunelab.training import run_training

    root = tmp_path_factory.mktemp("regressor")
    model = build_tiny_encoder(root / "bert", [" ".join(POSITIVE + NEGATIVE)] * 8)
    config = config_for(model, write_score_csv(root / "scores.csv"), task="regression", epochs=3,
                        output={"evaluate": False})  # fmt: skip
    result = run_training(config, root / "run")
    assert result.status == "completed", result.error
    return root / "run"


def test_classify_a_regressor_answers_its_value(regressor: Path, tunelab_home: Path) -> None:
    import torch

    from tunelab.models.loading import load_parts, locate
    from tunelab.serving.classify import MAX_INPUT_CHARS
    from tunelab.store.catalog import add_model
    from tunelab.store.db import session_factory

    settings = Settings(home=tunelab_home)
    texts = ["great love happy", "awful sad bad"]
    def values(precision: str) -> list[float]:
        model, tokenizer = load_parts(locate(str(regressor), progress=False), precision=precision, device="cpu")
        with torch.no_grad():
            return [float(model(**tokenizer(t, return_tensors="pt")).logits.view(-1)[0].float()) for t in texts]

    expected, exact = values("auto"), values("fp32")  # the server loads in the machine's auto precision
    assert expected == pytest.approx(exact, abs=0.05)  # bf16 rounding at most, where auto is bf16
    with TestClient(create_app(settings)) as client:
        with session_factory(settings.resolved_database_url)() as session:
            add_model(session, "scorer", source="local", location=str(regressor))
        for text, value in zip(texts, expected, strict=True):
            answer = client.post("/v1/classify", json={"model": "scorer", "input": text})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["model"] == "scorer" and body["label"] is None and body["scores"] == {}
            assert body["value"] == pytest.approx(value, abs=1e-5)
        too_long = client.post("/v1/classify", json={"model": "scorer", "input": "x" * (MAX_INPUT_CHARS + 1)})
        assert too_long.status_code == 422 and too_long.json()["error"]["message"]
        unknown = client.post("/v1/classify", json={"model": "scorer", "input": "x", "temperature": 0})
        assert unknown.status_code == 422  # the body is closed: a chat parameter is refused, not ignored
