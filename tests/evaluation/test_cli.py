"""`tunelab eval` as a user runs it: a table of metrics, the result recorded, errors as one line + hint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tunelab.cli.main import app


def test_eval_prints_a_table_and_records_the_evaluation(tiny_model_dir: Path, qa_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = CliRunner().invoke(app, ["eval", str(tiny_model_dir), "--data", str(qa_file), "--metrics",
                                      "bleu,rouge,exact_match", "--max-new-tokens", "4", "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("bleu", "rouge1", "rougeL", "exact_match"):
        assert name in result.output
    saved = json.loads(out.read_text())
    assert saved["rows_evaluated"] == 4 and len(saved["rows"]) == 4
    assert set(saved["summary"]["model"]) == {"bleu", "rouge1", "rouge2", "rougeL", "exact_match"}
    from tunelab.evaluation.service import list_evaluations
    from tunelab.settings import get_settings
    from tunelab.store.db import session_factory

    with session_factory(get_settings().resolved_database_url)() as session:
        rows, total = list_evaluations(session)
        assert total == 1 and rows[0].source == "cli" and rows[0].status == "completed"


def test_eval_errors_are_one_line_with_a_hint(tiny_model_dir: Path, qa_file: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tunelab", "eval", str(tiny_model_dir), *args],
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    done = run("--data", str(qa_file), "--metrics", "bleu,blue")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "Error [unknown_metric]: unknown metric 'blue'" in done.stderr and "Hint: known metrics: bleu" in done.stderr
    done = run("--data", str(qa_file), "--reference-column", "gold")
    assert done.returncode == 1 and "Error [missing_column]" in done.stderr and "columns found: instruction" in done.stderr
    done = run()
    assert done.returncode == 1 and "nothing to evaluate on" in done.stderr and "Hint: give --data" in done.stderr
