"""`tunelab monitor --once` on a real run directory and its metrics file."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tunelab.cli.main import app
from tunelab.cli.monitor import bar, sparkline
from tunelab.training import run_training


def test_monitor_once_draws_a_real_run(make_config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_training(make_config(epochs=2, name="tuna", output={"evaluate": False}), run)
    assert result.status == "completed"
    runner = CliRunner()
    frame = runner.invoke(app, ["monitor", str(run), "--once"], env={"COLUMNS": "120"})
    assert frame.exit_code == 0, frame.output
    text = frame.output
    assert "tuna" in text and "[completed]" in text and f"step {result.global_step} / {result.global_step}" in text
    assert "100.0%" in text and "samples/s" in text and "update/weight" in text
    assert "CPU" in text and "RAM" in text and "completed" in text
    assert any(block in text for block in "▁▂▃▄▅▆▇█")  # the loss sparkline

    log = runner.invoke(app, ["monitor", str(run / "metrics.jsonl"), "--once"], env={"COLUMNS": "120"})
    assert log.exit_code == 0 and "metrics.jsonl" in log.output and "loss" in log.output

    missing = runner.invoke(app, ["monitor", str(tmp_path / "nothing" / "here"), "--once"])
    assert missing.exit_code != 0


def test_sparkline_and_bar() -> None:
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([3, 3, 3]) == "▁▁▁"
    assert sparkline([float("nan")]) == ""
    assert len(sparkline(list(range(500)), width=40)) == 40
    assert bar(50, 10).startswith("█████░░░░░") and "50.0%" in bar(50, 10)
    assert "n/a" in bar(None)
