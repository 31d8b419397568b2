"""`tunelab train` end to end on the tiny model, and its error messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _tunelab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "from tunelab.cli.main import run; run()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_train_command_with_overrides(tiny_model_dir: Path, identity_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model: {tiny_model_dir}\ndataset: {identity_file.name}\nmax_length: 96\n"
                      "output:\n  eval_generations: 1\n  max_new_tokens: 4\n")
    run = tmp_path / "run"
    done = _tunelab("train", str(config), "epochs=1", "lora.r=4", "learning_rate=1e-3",
                    "--run-dir", str(run), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Training summary" in done.stdout and "tuned eval loss" in done.stdout
    resolved = json.loads((run / "config.json").read_text())
    assert resolved["lora"]["r"] == 4 and resolved["learning_rate"] == 1e-3
    assert resolved["dataset"] == str(identity_file)  # resolved relative to the config file


def test_train_command_reports_errors_with_hints(tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text("dataset: missing.json\nprecision: fp16\nbatch_size: 999\n")
    done = _tunelab("train", str(config), cwd=tmp_path)
    assert done.returncode == 1
    assert "batch_size" in done.stderr and "Hint:" in done.stderr and "Traceback" not in done.stderr
