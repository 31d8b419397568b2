"""Model families beyond causal LMs: seq2seq (T5, BART) and encoder classifiers/regressors (BERT).

Every test trains tiny random models built from configs (``tunelab.testing``),
so nothing is downloaded; each run is a few steps.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.training.conftest import EXAMPLES, read_jsonl
from tests.training.test_resume import PauseAt

from tunelab.errors import DatasetError
from tunelab.training import TrainConfig, preflight, run_training

POSITIVE = ["great", "wonderful", "excellent", "love", "happy", "brilliant"]
NEGATIVE = ["awful", "terrible", "bad", "hate", "sad", "boring"]


def write_sentiment_csv(path: Path, rows: int = 64, seed: int = 0) -> Path:
    """A separable synthetic `text,label` set: positive words vs negative words."""
    rng = random.Random(seed)
    lines = ["text,label"]
    for i in range(rows):
        label = "positive" if i % 2 else "negative"
        words = rng.sample(POSITIVE if i % 2 else NEGATIVE, 3)
        lines.append(f"the film was {' '.join(words)},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_score_csv(path: Path, rows: int = 48, seed: int = 0) -> Path:
    """A `text,label` regression set: the target is the number of positive words (0 to 3)."""
    rng = random.Random(seed)
    lines = ["text,label"]
    for _ in range(rows):
        k = rng.randint(0, 3)
        words = rng.sample(POSITIVE, k) + rng.sample(NEGATIVE, 3 - k)
        rng.shuffle(words)
        lines.append(f"{' '.join(words)},{k}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Tiny T5-, BART- and BERT-shaped models, built once per module on first use."""
    from tunelab.testing import build_tiny_encoder, build_tiny_seq2seq

    rows = json.loads((EXAMPLES / "data" / "identity.json").read_text())
    texts = [f"{r['instruction']} {r['output']}" for r in rows] + [" ".join(POSITIVE + NEGATIVE)] * 4
    built: dict[str, Path] = {}

    def get(shape: str) -> Path:
        if shape not in built:
            folder = tmp_path_factory.mktemp(f"tiny-{shape}")
            built[shape] = (build_tiny_encoder(folder, texts) if shape == "bert"
                            else build_tiny_seq2seq(folder, texts, shape=shape))  # fmt: skip
        return built[shape]

    return get


@pytest.fixture
def sentiment_csv(tmp_path: Path) -> Path:
    return write_sentiment_csv(tmp_path / "sentiment.csv")


def config_for(model: Path, dataset: Path, **overrides: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "model": str(model), "dataset": str(dataset), "method": "lora", "batch_size": 8, "epochs": 2,
        "max_length": 64, "learning_rate": 5e-3, "warmup_ratio": 0.0, "eval_split": 0.2, "save_steps": 0,
        "output": {"eval_generations": 1, "max_new_tokens": 6},
    }  # fmt: skip
    base.update(overrides)
    return TrainConfig.model_validate(base)


def train_losses(run_dir: Path) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in read_jsonl(run_dir / "metrics.jsonl") if m["type"] == "train"}


# ---------------------------------------------------------------- seq2seq


@pytest.mark.parametrize("shape", ["t5", "bart"])
def test_seq2seq_lora_learns_and_resumes_at_the_same_step(shape: str, family_dir, identity_file, tmp_path) -> None:
    config = config_for(family_dir(shape), identity_file, epochs=4, eval_split=0.1, max_rows=16,
                        learning_rate=1e-2, output={"evaluate": False})  # fmt: skip
    straight = run_training(config, tmp_path / "straight")
    assert straight.status == "completed", straight.error
    losses = train_losses(tmp_path / "straight")
    assert losses[max(losses)] < losses[1] - 0.2  # the loss falls
    resolved = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert (resolved["task"], resolved["packing"]) == ("seq2seq", False)  # auto read the config; never packed
    adapter = json.loads((tmp_path / "straight" / "output" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_2_SEQ_LM"

    run = tmp_path / "paused"
    first = run_training(config, run, PauseAt(run, 3))
    assert (first.status, first.global_step) == ("stopped", 3)
    second = run_training(config, run)
    assert second.status == "completed" and second.global_step == straight.global_step
    steps = [m["step"] for m in read_jsonl(run / "metrics.jsonl") if m["type"] == "train"]
    assert steps == list(range(1, straight.global_step + 1))
    for step, loss in losses.items():
        assert abs(train_losses(run)[step] - loss) < 1e-4, step


def test_seq2seq_evaluation_has_exact_match_and_replies(family_dir, identity_file, tmp_path) -> None:
    result = run_training(config_for(family_dir("t5"), identity_file, max_steps=3, eval_split=0.1), tmp_path / "r")
    assert result.status == "completed", result.error
    evaluation = result.evaluation
    assert evaluation is not None
    for side in ("base", "tuned"):
        assert 0.0 <= evaluation[side]["exact_match"] <= 1.0 and evaluation[side]["exact_match_rows"] == 3
        assert evaluation[side]["eval_loss"] > 0
    assert evaluation["samples"][0]["reference"] and isinstance(evaluation["samples"][0]["tuned"], str)


def test_seq2seq_refuses_plain_text_rows(family_dir, tmp_path) -> None:
    data = tmp_path / "text.jsonl"
    data.write_text("\n".join(json.dumps({"text": f"plain document {i}"}) for i in range(8)))
    result = run_training(config_for(family_dir("t5"), data), tmp_path / "r")
    assert result.status == "invalid" and result.error["code"] == "seq2seq_needs_pairs"


# ---------------------------------------------------------- classification


def _scores(model: Any, tokenizer: Any, texts: list[str]) -> Any:
    import torch

    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return torch.softmax(model(**batch).logits.float(), -1)


@pytest.fixture(scope="module")
def trained_classifier(family_dir, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A BERT-shaped sentiment classifier trained once for this module: (run dir, result)."""
    folder = tmp_path_factory.mktemp("classifier")
    data = write_sentiment_csv(folder / "sentiment.csv")
    run = folder / "run"
    return run, run_training(config_for(family_dir("bert"), data, epochs=4, eval_steps=4, learning_rate=1e-2), run)


def test_bert_classifier_learns_a_separable_set_and_exports(trained_classifier, tmp_path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunelab.export.merged import export_merged
    from tunelab.models.loading import load_parts, locate

    run, result = trained_classifier
    assert result.status == "completed", result.error
    tuned = result.evaluation["tuned"]
    assert tuned["accuracy"] > 0.75 and tuned["macro_f1"] > 0.7  # chance is 0.5
    assert set(tuned["per_class_f1"]) == {"negative", "positive"}
    matrix = tuned["confusion_matrix"]
    assert matrix["labels"] == ["negative", "positive"] and sum(map(sum, matrix["matrix"])) == tuned["eval_examples"]
    assert json.loads((run / "labels.json").read_text())["labels"] == ["negative", "positive"]
    evals = [m for m in read_jsonl(run / "metrics.jsonl") if m["type"] == "eval"]
    assert evals and "eval_accuracy" in evals[0] and "eval_perplexity" not in evals[0]
    adapter = json.loads((run / "output" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_CLS"

    texts = ["the film was great love happy", "the film was awful sad bad"]
    served, tokenizer = load_parts(locate(str(run), progress=False), precision="fp32", device="cpu")
    before = _scores(served, tokenizer, texts)
    out = export_merged(run, tmp_path / "export", dtype="fp32", progress=False)
    plain = AutoModelForSequenceClassification.from_pretrained(out)
    assert plain.config.id2label == {0: "negative", 1: "positive"}
    after = _scores(plain.eval(), AutoTokenizer.from_pretrained(out), texts)
    assert torch.allclose(before, after, atol=1e-5)
    assert after[0].argmax() == 1 and after[1].argmax() == 0


def test_classify_route_and_sdk(trained_classifier, tunelab_home: Path, tiny_model_dir: Path) -> None:
    from fastapi.testclient import TestClient
    from tests.api.live import thread_server

    from tunelab.api import create_app
    from tunelab.client import Client
    from tunelab.settings import Settings
    from tunelab.store.catalog import add_model
    from tunelab.store.db import session_factory

    run, _ = trained_classifier
    settings = Settings(home=tunelab_home)
    app = create_app(settings)
    with TestClient(app) as client:
        with session_factory(settings.resolved_database_url)() as session:
            add_model(session, "sentiment", source="local", location=str(run))
            add_model(session, "tiny-chat", source="local", location=str(tiny_model_dir))
        answer = client.post("/v1/classify", json={"model": "sentiment", "input": "the film was great love happy"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["label"] == "positive" and set(body["scores"]) == {"negative", "positive"}
        assert abs(sum(body["scores"].values()) - 1) < 1e-5 and body["scores"]["positive"] > 0.5
        refused = client.post("/v1/classify", json={"model": "tiny-chat", "input": "hello"})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "not_a_classifier"
        assert "causal_lm" in refused.json()["error"]["message"]
        missing = client.post("/v1/classify", json={"model": "nope", "input": "hello"})
        assert missing.status_code == 404
    with thread_server(create_app(settings)) as url, Client(url) as sdk:
        assert sdk.classify("sentiment", "the film was awful sad bad")["label"] == "negative"


def test_text_pairs_and_mapped_columns(family_dir, tmp_path) -> None:
    data = tmp_path / "pairs.jsonl"
    rows = [{"premise": f"{w} day", "hypothesis": f"a {w} time", "verdict": "same" if i % 2 else "other"}
            for i, w in enumerate(POSITIVE * 3)]  # fmt: skip
    data.write_text("\n".join(json.dumps(r) for r in rows))
    config = config_for(family_dir("bert"), data, task="classification", max_steps=2,
                        dataset_mapping={"verdict": "label"})  # fmt: skip
    result = run_training(config, tmp_path / "r")
    assert result.status == "completed", result.error
    assert result.evaluation["tuned"]["confusion_matrix"]["labels"] == ["other", "same"]


def test_missing_label_column_is_a_row_error_naming_the_columns(family_dir, tmp_path) -> None:
    from tunelab.training.data import read_records

    data = tmp_path / "unlabeled.csv"
    data.write_text("text,stars\nnice film,5\nbad film,1\n")
    with pytest.raises(DatasetError) as caught:
        read_records(str(data), "classification")
    error = caught.value
    assert error.code == "missing_column" and error.details["row"] == 0
    assert "label" in error.message and "stars, text" in error.message
    config = config_for(family_dir("bert"), data, task="classification")
    issues = [i for i in preflight(config) if i.level == "error"]
    assert [i.code for i in issues] == ["dataset_invalid"] and "stars, text" in issues[0].message
    result = run_training(config, tmp_path / "r")
    assert result.status == "invalid" and "columns: stars, text" in result.error["message"]


def test_one_label_only_is_refused(family_dir, tmp_path) -> None:
    data = tmp_path / "one.csv"
    data.write_text("text,label\na,yes\nb,yes\nc,yes\n")
    issues = preflight(config_for(family_dir("bert"), data, task="classification"))
    assert any("at least two labels" in i.message for i in issues if i.level == "error")


# -------------------------------------------------------------- regression


def test_regression_trains_and_reports_mae_rmse(family_dir, tmp_path) -> None:
    data = write_score_csv(tmp_path / "scores.csv")
    config = config_for(family_dir("bert"), data, task="regression", epochs=3)
    result = run_training(config, tmp_path / "r")
    assert result.status == "completed", result.error
    base, tuned = result.evaluation["base"], result.evaluation["tuned"]
    assert tuned["mae"] >= 0 and tuned["rmse"] >= tuned["mae"]
    assert tuned["rmse"] < base["rmse"]  # learned something about the scale
    assert json.loads((tmp_path / "r" / "output" / "labels.json").read_text()) == {"task": "regression", "labels": []}


def test_regression_rejects_a_non_numeric_label_by_row(family_dir, tmp_path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("text,label\na,1.5\nb,high\nc,2\n")
    result = run_training(config_for(family_dir("bert"), data, task="regression"), tmp_path / "r")
    assert result.status == "invalid" and "row 1" in result.error["message"] and "'high'" in result.error["message"]


def test_metric_formulas() -> None:
    from tunelab.training.evaluate import classification_metrics, regression_metrics

    found = classification_metrics([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"])
    assert found["accuracy"] == 0.75
    assert found["per_class_f1"] == {"a": 1.0, "b": pytest.approx(2 / 3), "c": pytest.approx(2 / 3)}
    assert found["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert found["confusion_matrix"]["matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    errors = regression_metrics([1.0, 2.0, 5.0], [1.0, 3.0, 3.0])
    assert errors["mae"] == pytest.approx(1.0) and errors["rmse"] == pytest.approx((5 / 3) ** 0.5)


# ------------------------------------------------------- methods and tasks


@pytest.mark.parametrize("shape,task", [("t5", "seq2seq"), ("bert", "classification"), ("bert", "regression")])
def test_ia3_trains_every_task(shape: str, task: str, family_dir, identity_file, tmp_path) -> None:
    data = identity_file if shape == "t5" else (write_score_csv(tmp_path / "s.csv") if task == "regression"
                                                else write_sentiment_csv(tmp_path / "c.csv"))  # fmt: skip
    config = config_for(family_dir(shape), data, task=task, method="ia3", max_steps=2, learning_rate=1e-2,
                        output={"evaluate": False})  # fmt: skip
    result = run_training(config, tmp_path / "r")
    assert result.status == "completed", result.error
    adapter = json.loads((tmp_path / "r" / "output" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "IA3"
    assert adapter["task_type"] == ("SEQ_2_SEQ_LM" if task == "seq2seq" else "SEQ_CLS")


@pytest.mark.parametrize("method", ["prompt", "full"])
def test_other_methods_train_a_classifier(method: str, family_dir, sentiment_csv, tmp_path) -> None:
    config = config_for(family_dir("bert"), sentiment_csv, method=method, max_steps=2, output={"evaluate": False},
                        learning_rate=1e-3 if method == "prompt" else 1e-4)  # fmt: skip
    result = run_training(config, tmp_path / "r")
    assert result.status == "completed", result.error


def test_unsupported_pairs_are_refused_naming_method_and_task(family_dir, sentiment_csv) -> None:
    from tunelab.errors import ConfigError
    from tunelab.training.config import load_config_dict

    with pytest.raises(ConfigError) as caught:
        load_config_dict({"dataset": "x.csv", "task": "classification", "method": "qlora"})
    assert "`method: qlora` is not available for `task: classification`" in caught.value.message
    # task auto: the model says classification, preflight refuses the pair with the same words
    config = config_for(family_dir("bert"), sentiment_csv, method="qlora", precision="bf16")
    refused = [i for i in preflight(config) if i.code == "method_unsupported_for_task"]
    assert refused and "qlora" in refused[0].message and "classification" in refused[0].message
    assert refused[0].details == {"task": "classification", "method": "qlora"}


def test_registry_facts() -> None:
    from tunelab.training.tasks import TASKS, task_fields

    assert TASKS["causal_lm"].packable and not TASKS["seq2seq"].packable
    assert TASKS["classification"].auto_class == "AutoModelForSequenceClassification"
    assert TASKS["seq2seq"].peft_task_type == "SEQ_2_SEQ_LM"
    assert {"lora", "ia3"} <= set(TASKS["regression"].methods)
    hidden = task_fields()
    assert "packing" in hidden["seq2seq"] and "output.max_new_tokens" in hidden["classification"]
    assert hidden["causal_lm"] == ["loss.class_weights"]  # labels only: a causal LM weighs tokens


def test_auto_detection_reads_the_config(family_dir, tiny_model_dir) -> None:
    from tunelab.models.loading import detect_task

    assert detect_task(family_dir("t5")) == "seq2seq"
    assert detect_task(family_dir("bart")) == "seq2seq"
    assert detect_task(family_dir("bert")) == "classification"
    assert detect_task(tiny_model_dir) == "causal_lm"


def test_seq2seq_chats_through_the_server(family_dir, identity_file, tunelab_home: Path, tmp_path) -> None:
    """A tuned T5 answers /v1/chat/completions (whole and streamed) and /generate, the same greedy reply."""
    from fastapi.testclient import TestClient

    from tunelab.api import create_app
    from tunelab.settings import Settings
    from tunelab.store.catalog import add_model
    from tunelab.store.db import session_factory

    run = tmp_path / "t5-run"
    result = run_training(config_for(family_dir("t5"), identity_file, max_steps=3, output={"evaluate": False}), run)
    assert result.status == "completed", result.error
    settings = Settings(home=tunelab_home)
    messages = [{"role": "user", "content": "Who are you?"}]
    with TestClient(create_app(settings)) as client:
        with session_factory(settings.resolved_database_url)() as session:
            add_model(session, "t5-tuned", source="local", location=str(run))
        body = {"model": "t5-tuned", "messages": messages, "temperature": 0, "max_tokens": 6}
        whole = client.post("/v1/chat/completions", json=body)
        assert whole.status_code == 200, whole.text
        reply = whole.json()["choices"][0]["message"]["content"]
        streamed = client.post("/v1/chat/completions", json={**body, "stream": True})
        assert streamed.status_code == 200, streamed.text
        pieces = [json.loads(line[6:]) for line in streamed.text.splitlines()
                  if line.startswith("data: {")]  # fmt: skip
        assert "".join(p["choices"][0]["delta"].get("content") or "" for p in pieces if p.get("choices")) == reply
        generated = client.post("/generate", json={"model": "t5-tuned", "prompt": "Who are you?", "max_length": 32})
        assert generated.status_code == 200, generated.text
        assert isinstance(generated.json()["response"], str)
