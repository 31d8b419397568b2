"""``tunelab estimate`` and ``tunelab advise`` as a user runs them: tables, JSON, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tunelab.cli.main import app


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_estimate_prints_split_devices_and_cheapest(tmp_path: Path) -> None:
    path = _config(tmp_path, "model: smollm2-135m-instruct\nmethod: lora\nmax_length: 256\nmax_steps: 100\n")
    result = CliRunner().invoke(app, ["estimate", str(path), "--batch-size", "4", "--budget", "5"])
    assert result.exit_code == 0, result.output
    for text in ("Memory on this machine", "with checkpointing", "H200-141GB", "T4-16GB", "Cheapest within 5",
                 "this machine (RAM)", "--calibrate"):  # fmt: skip
        assert text in result.output, text
    found = json.loads(CliRunner().invoke(app, ["estimate", str(path), "--json", "method=full"]).output)
    assert found["method"] == "full" and found["memory"]["batch_size"] == 8 and found["total_tokens"] == 100 * 8 * 256


def test_estimate_errors_are_one_line_with_a_hint(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = _config(tmp_path, "model: smollm2-135m-instruct\nmax_steps: 10\ncolour: blue\n")
    run = subprocess.run([sys.executable, "-m", "tunelab", "estimate", str(path)], capture_output=True, text=True)
    assert run.returncode == 1 and "colour" in run.stderr and "Hint:" in run.stderr and "Traceback" not in run.stderr
    path = _config(tmp_path, "model: smollm2-135m-instruct\nmax_steps: 10\n")
    run = subprocess.run([sys.executable, "-m", "tunelab", "estimate", str(path), "--budget", "0"],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 1 and "`budget` must be more than 0" in run.stderr


def test_advise_gives_the_lessons_answer() -> None:
    args = ["advise", "--data-volume", "large", "--knowledge-type", "behavioral", "--update-frequency", "rare",
            "--budget", "medium", "--latency-sensitive"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Recommendation: fine-tuning (fine-tuning 7, RAG 2" in result.output
    found = json.loads(CliRunner().invoke(app, [*args, "--json"]).output)
    assert found["rag_score"] == 2
    bad = CliRunner().invoke(app, ["advise", "--budget", "lots"])
    assert bad.exit_code != 0 and "--budget" in str(bad.exception)
