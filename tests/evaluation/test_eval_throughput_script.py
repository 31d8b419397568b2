"""The evaluation-throughput benchmark runs end to end on the tiny model (so its arms cannot rot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "eval_throughput.py"


@pytest.mark.slow
def test_benchmark_runs_both_arms_and_prints_the_ratio(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--model", str(tiny_model_dir), "--prompts", "4",
                           "--max-new-tokens", "4", "--batch-size", "4", "--json-out", str(out)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    runs = results["runs"]
    assert [(r["arm"], r["batch_size"]) for r in runs] == [("batched", 4), ("single", 1), ("single", 1), ("batched", 4)]
    for run in runs:
        assert run["prompts"] == 4 and len(run["replies"]) == 4
        assert 0 < run["tokens"] <= 4 * 4 and run["tokens_per_s"] > 0 and run["load_s"] > 0
    assert runs[0]["replies"] == runs[3]["replies"] and runs[1]["replies"] == runs[2]["replies"]  # greedy repeats
    assert runs[0]["replies"] == runs[1]["replies"]  # left-padded batches change no reply
    assert set(results["mean_tokens_per_s"]) == {"batched", "single"}
    assert "batched vs single:" in done.stdout and "identical replies: 4/4" in done.stdout
