"""The terminal faces: `tunelab eval --against A --against B` (three models side by side),
`tunelab ratings add/list/summary` and `tunelab jobs compare` against a live studio."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.api.conftest import base_url, chat_file, settings  # noqa: F401
from typer.testing import CliRunner

from tunelab.cli.main import app


def test_three_models_side_by_side_then_rated_from_the_terminal(
    tiny_model_dir: Path,
    qa_file: Path,
    tmp_path: Path,
    base_url: str,  # noqa: F811
) -> None:
    out = tmp_path / "result.json"
    result = CliRunner().invoke(app, ["eval", str(tiny_model_dir), "--data", str(qa_file), "--metrics", "rougeL",
                                      "--against", str(tiny_model_dir), "--against", str(tiny_model_dir),
                                      "--max-new-tokens", "4", "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert list(saved["sides"]) == ["model", "against", "against_2"]
    assert set(saved["rows"][0]["outputs"]) == {"model", "against", "against_2"}
    assert (
        list(saved["sides"].values()) == [str(tiny_model_dir)] * 3
    )  # labelled as the user named them
    evaluation_id = saved["id"]

    runner = CliRunner()
    added = runner.invoke(app, ["ratings", "add", evaluation_id, "0", "better", "--comment", "shorter",
                                "--url", base_url])  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "row 0: model better than against" in added.output
    runner.invoke(app, ["ratings", "add", evaluation_id, "1", "tie", "--a", "against_2", "--b", "model",
                        "--url", base_url])  # fmt: skip
    listed = runner.invoke(app, ["ratings", "list", evaluation_id, "--url", base_url])
    assert listed.exit_code == 0 and "shorter" in listed.output and "against_2" in listed.output
    summary = runner.invoke(app, ["ratings", "summary", evaluation_id, "--url", base_url])
    assert summary.exit_code == 0, summary.output
    assert "2 ratings, 2 of 4 rows" in summary.output and "100%" in summary.output

    done = subprocess.run([sys.executable, "-m", "tunelab", "ratings", "add", evaluation_id, "9", "better",
                           "--url", base_url], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "has no row 9" in done.stderr and "Hint: rows are numbered 0 to 3" in done.stderr
    done = subprocess.run([sys.executable, "-m", "tunelab", "ratings", "add", evaluation_id, "0", "great",
                           "--url", base_url], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert (
        done.returncode == 1
        and "unknown verdict 'great'" in done.stderr
        and "better, worse, tie" in done.stderr
    )


def test_jobs_compare_prints_the_differing_hyperparameters(base_url: str, chat_file: Path) -> None:  # noqa: F811
    import httpx

    ids = []
    for learning_rate in (1e-4, 3e-4):
        config = {"model": "tiny-model", "dataset": str(chat_file),
                  "hyperparameters": {"max_steps": 2, "learning_rate": learning_rate}}  # fmt: skip
        created = httpx.post(
            f"{base_url}/api/jobs", json={"configuration": config, "submit": False}
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    result = CliRunner().invoke(app, ["jobs", "compare", *ids, "--url", base_url])
    assert result.exit_code == 0, result.output
    assert "Hyperparameters that differ" in result.output
    line = next(line for line in result.output.splitlines() if "learning_rate" in line)
    assert "0.0001" in line and "0.0003" in line
