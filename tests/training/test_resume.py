"""Pause and resume: the same global step, the same loss curve, no duplicated metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.training.conftest import read_jsonl

from tunelab.training import run_training


class PauseAt:
    """A Reporter that asks for a pause (control file) when a given step is logged."""

    def __init__(self, run_dir: Path, step: int) -> None:
        self.run_dir, self.step = run_dir, step

    def on_event(self, event: dict[str, Any]) -> None:
        return None

    def on_metrics(self, metrics: dict[str, Any]) -> None:
        if metrics.get("type") == "train" and metrics["step"] == self.step:
            (self.run_dir / "control").write_text("pause")


def _train_losses(run_dir: Path) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in read_jsonl(run_dir / "metrics.jsonl") if m["type"] == "train"}


def test_resume_matches_an_uninterrupted_run(make_config, tmp_path: Path) -> None:
    config = make_config(epochs=3, lora={"dropout": 0.1}, output={"evaluate": False}, eval_steps=2)
    straight = run_training(config, tmp_path / "straight")
    assert straight.status == "completed"

    run = tmp_path / "paused"
    first = run_training(config, run, PauseAt(run, 5))
    assert (first.status, first.exit_code, first.global_step) == ("stopped", 75, 5)
    assert (run / "checkpoints" / "checkpoint-5" / "adapter_model.safetensors").exists()
    assert not (run / "control").exists()  # the request was consumed
    # A crashed writer may have logged past the checkpoint; resume must drop those lines.
    with (run / "metrics.jsonl").open("a") as fh:
        fh.write('{"type": "train", "step": 6, "loss": 99.0}\n')

    second = run_training(config, run)
    assert second.status == "completed" and second.global_step == straight.global_step
    steps = [m["step"] for m in read_jsonl(run / "metrics.jsonl") if m["type"] == "train"]
    assert steps == sorted(set(steps)) == list(range(1, straight.global_step + 1))
    expected, got = _train_losses(tmp_path / "straight"), _train_losses(run)
    for step, loss in expected.items():
        assert abs(got[step] - loss) < 1e-5, (step, got[step], loss)
    events = [e["type"] for e in read_jsonl(run / "events.jsonl")]
    assert "paused" in events and "resumed" in events and events[-1] == "completed"


def test_resume_from_named_checkpoint(make_config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = make_config(save_steps=2, save_total_limit=5, output={"evaluate": False})
    assert run_training(config, run).status == "completed"
    again = run_training(config.model_copy(update={"resume_from": "checkpoint-4"}), run)
    assert again.status == "completed"
    resumed = [e for e in read_jsonl(run / "events.jsonl") if e["type"] == "resumed"]
    assert resumed[-1]["data"]["step"] == 4
    missing = run_training(config.model_copy(update={"resume_from": "checkpoint-99"}), run)
    assert missing.exit_code == 1 and "checkpoint-99" in missing.error["message"]


def test_sigterm_saves_a_usable_checkpoint_and_exits_75(make_config, tmp_path: Path) -> None:
    import json

    run = tmp_path / "run"
    run.mkdir()
    config = make_config(epochs=10, max_length=64, output={"evaluate": False})
    (run / "config.json").write_text(json.dumps(config.model_dump(mode="json")))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "tunelab.training", str(run)], env=env,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        metrics = run / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err.decode()[-2000:]
    checkpoints = sorted((run / "checkpoints").iterdir())
    assert len(checkpoints) == 1
    step = int(checkpoints[0].name.split("-")[1])
    assert step >= 2
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(config.model)
    PeftModel.from_pretrained(base, checkpoints[0])  # a plain peft load works
    events = read_jsonl(run / "events.jsonl")
    assert events[-1]["type"] == "paused" and events[-1]["data"]["reason"] == "SIGTERM"
    resolved = json.loads((run / "config.json").read_text())
    assert resolved["engine"]["tunelab_version"]
