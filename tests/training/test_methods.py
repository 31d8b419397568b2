"""Every method trains the tiny model: the loss falls and every trainable parameter changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.training.rundir import RunFiles
from tunelab.training.runner import Recipe
from tunelab.training.stopping import StopSignal

METHODS = ["full", "lora", "dora", "ia3", "prefix", "prompt", "adalora"]


@pytest.mark.parametrize("method", METHODS)
def test_method_trains(method: str, make_config, tmp_path: Path) -> None:
    lr = 2e-3 if method == "full" else 1e-2
    config = make_config(method=method, epochs=3, learning_rate=lr, scheduler="constant",
                         eval_split=0.0, output={"evaluate": False})
    files = RunFiles(tmp_path / "run")
    recipe = Recipe(config, files, StopSignal(files))
    recipe.setup()
    before = {n: p.detach().clone() for n, p in recipe.model.named_parameters() if p.requires_grad}
    assert before, "no trainable parameters"
    assert recipe.train() == 0
    after = dict(recipe.model.named_parameters())
    unchanged = [n for n, v in before.items() if (after[n].detach() == v).all()]
    # AdaLoRA's rank budget may prune a few triplets to exactly zero; all others must move.
    assert not unchanged or (method == "adalora" and len(unchanged) < len(before) // 2), unchanged[:5]
    from tests.training.conftest import read_jsonl

    losses = [m["loss"] for m in read_jsonl(files.metrics_path) if m["type"] == "train"]
    assert len(losses) == recipe.total_steps
    head, tail = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert tail < head, losses
    files.close()


def test_run_training_writes_the_run_directory(make_config, tmp_path: Path) -> None:
    import json

    from tunelab.training import run_training

    result = run_training(make_config(eval_steps=2, save_steps=3, save_total_limit=1), tmp_path / "run")
    assert result.status == "completed" and result.exit_code == 0
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["engine"]["tunelab_version"] and config["precision"] in ("fp32", "bf16")
    assert config["attention"] == "sdpa_packed"  # auto on a CPU
    saved = json.loads((run / "output" / "adapter_config.json").read_text())
    assert "sdpa_packed" not in json.dumps(saved)  # the output loads without tunelab
    from tests.training.conftest import read_jsonl

    metrics = read_jsonl(run / "metrics.jsonl")
    train = [m for m in metrics if m["type"] == "train"]
    keys = {"step", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_second", "tokens_seen",
            "elapsed_s", "eta_s"}
    assert keys <= set(train[0])
    assert [m["step"] for m in train] == list(range(1, len(train) + 1))
    assert any(m["type"] == "eval" and "eval_loss" in m for m in metrics)
    events = [e["type"] for e in read_jsonl(run / "events.jsonl")]
    assert events[0] == "preflight" and events[-1] == "completed"
    assert "checkpoint_saved" in events and "started" in events
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["checkpoint-6"]  # limit 1
    out = run / "output"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "summary.json",
                 "evaluation.json"):
        assert (out / name).exists(), name
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["base"]["eval_loss"] > 0 and evaluation["tuned"]["eval_loss"] > 0
    assert evaluation["samples"] and {"prompt", "base", "tuned"} <= set(evaluation["samples"][0])
    assert (run / "train.log").read_text()
