"""`report_to` trackers (TensorBoard, read back with its own reader) and Ctrl-C in `tunelab train`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.training.conftest import read_jsonl
from tests.training.test_resume import PauseAt

from tunelab.training import run_training
from tunelab.training.trackers import flatten, metric_values


def _scalars(run_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return acc


def _metric_lines(run_dir: Path, kind: str, key: str) -> dict[int, float]:
    return {m["step"]: m[key] for m in read_jsonl(run_dir / "metrics.jsonl") if m["type"] == kind}


def test_flatten_and_metric_names() -> None:
    assert flatten({"lora": {"r": 8, "target_modules": ["q", "v"]}, "seed": 1, "resume_from": None}) == {
        "lora.r": 8, "lora.target_modules": '["q", "v"]', "seed": 1, "resume_from": "null"}
    assert metric_values({"type": "eval", "step": 4, "eval_loss": 1.5, "eval_perplexity": 4.48}) == {
        "eval/loss": 1.5, "eval/perplexity": 4.48}
    assert metric_values({"type": "train", "step": 1, "loss": 2.0, "tokens_seen": 10}) == {
        "train/loss": 2.0, "train/tokens_seen": 10.0}


def test_tensorboard_gets_every_metric_and_the_config(make_config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_training(make_config(report_to="tensorboard", eval_steps=2, output={"evaluate": False}), run)
    assert result.status == "completed"
    acc = _scalars(run)
    expected = _metric_lines(run, "train", "loss")
    assert list(expected) == list(range(1, result.global_step + 1))
    logged = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert logged == pytest.approx(expected, rel=1e-6)
    for tag in ("train/learning_rate", "train/grad_norm", "train/tokens_per_second", "train/epoch"):
        assert [e.step for e in acc.Scalars(tag)] == list(expected)
    evals = _metric_lines(run, "eval", "eval_loss")
    assert evals and {e.step: e.value for e in acc.Scalars("eval/loss")} == pytest.approx(evals, rel=1e-6)

    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = session.session_start_info.hparams
    assert hparams["method"].string_value == "lora" and hparams["lora.r"].number_value == 16
    assert hparams["report_to"].string_value == "tensorboard"
    assert hparams["precision"].string_value in ("fp32", "bf16")  # the resolved value, not "auto"
    assert not [e for e in read_jsonl(run / "events.jsonl") if e["type"] == "warning"]


def test_tensorboard_resume_replaces_steps_past_the_checkpoint(make_config, tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    config = make_config(report_to="tensorboard", output={"evaluate": False})
    first = run_training(config, run, PauseAt(run, 3))
    assert (first.status, first.global_step) == ("stopped", 3)
    crashed = SummaryWriter(str(run / "tensorboard"))  # a crash after the checkpoint logged steps 4 and 5
    for step in (4, 5):
        crashed.add_scalar("train/loss", 99.0, step)
    crashed.close()

    second = run_training(config, run)
    assert second.status == "completed"
    losses = [(e.step, e.value) for e in _scalars(run).Scalars("train/loss")]
    assert [s for s, _ in losses] == list(range(1, second.global_step + 1))  # each step once, in order
    assert dict(losses) == pytest.approx(_metric_lines(run, "train", "loss"), rel=1e-6)


def test_tracker_failure_is_one_warning_and_the_run_completes(make_config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "tensorboard").write_text("a file where the log folder should be")
    result = run_training(make_config(report_to="tensorboard", epochs=1, output={"evaluate": False}), run)
    assert result.status == "completed" and result.exit_code == 0
    warnings = [e for e in read_jsonl(run / "events.jsonl") if e["type"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["data"]["code"] == "tracker_failed"
    assert "tensorboard" in warnings[0]["message"]


def _start_train(tiny_model_dir: Path, identity_file: Path, tmp_path: Path, output: str,
                 wait_for: str) -> tuple[subprocess.Popen[str], Path]:
    """`tunelab train` in a subprocess, returned once ``wait_for`` ("metrics" or an event type) shows up."""
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model: {tiny_model_dir}\ndataset: {identity_file.name}\nmax_length: 64\nepochs: 10\n"
                      f"output: {output}\n")
    run = tmp_path / "run"
    code = "from tunelab.cli.main import run; run()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "train", str(config), "lora.r=4", "--run-dir", str(run)], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "300"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a shell's `cmd &` may ignore it
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if wait_for == "metrics" and len(_lines(run / "metrics.jsonl")) >= 2:
            break
        if any(json.loads(line)["type"] == wait_for for line in _lines(run / "events.jsonl")):
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    return proc, run


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def test_ctrl_c_saves_a_checkpoint_and_prints_how_to_resume(tiny_model_dir: Path, identity_file: Path,
                                                            tmp_path: Path) -> None:
    proc, run = _start_train(tiny_model_dir, identity_file, tmp_path, "{evaluate: false}", "metrics")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-2000:]
    assert "Traceback" not in err and "Ctrl-C again" in err
    assert f"--run-dir {run}" in out and "lora.r=4" in out, out
    checkpoints = sorted((run / "checkpoints").iterdir())
    assert len(checkpoints) == 1 and (checkpoints[0] / "adapter_model.safetensors").exists()
    last = read_jsonl(run / "events.jsonl")[-1]
    assert last["type"] == "paused" and last["data"]["reason"] == "SIGINT"
    assert last["data"]["step"] == int(checkpoints[0].name.split("-")[1])
    trainer_state = json.loads((checkpoints[0] / "trainer_state.json").read_text())
    assert trainer_state["global_step"] == last["data"]["step"]


def test_second_ctrl_c_aborts_at_once(tiny_model_dir: Path, identity_file: Path, tmp_path: Path) -> None:
    # The base-model evaluation (long generations) runs before the first step, so the first
    # Ctrl-C cannot have been honoured yet when the second one arrives.
    output = "{eval_generations: 3, max_new_tokens: 900}"
    proc, run = _start_train(tiny_model_dir, identity_file, tmp_path, output, "started")
    started = time.time()
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    while "Ctrl-C again" not in (line := proc.stderr.readline()):
        assert line, "no stop message on stderr"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert time.time() - started < 10 and "Aborted" in out and f"--run-dir {run}" in out
    assert not (run / "checkpoints").exists() or not list((run / "checkpoints").iterdir())
    last = read_jsonl(run / "events.jsonl")[-1]
    assert last["type"] == "failed" and last["data"]["code"] == "interrupted"
