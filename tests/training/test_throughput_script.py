"""The training benchmark runs end to end on the tiny model (so its baselines cannot rot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_throughput.py"


@pytest.mark.slow
def test_benchmark_runs_all_variants_and_prints_ratios(tiny_model_dir: Path, shared_datasets: Path,
                                                       tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(tiny_model_dir), "--dataset",
         str(shared_datasets / "alpaca_en_demo.json"), "--rows", "16", "--steps", "3", "--batch-size", "2",
         "--max-length", "64", "--json-out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results) == {"tutorial", "fair", "tunelab"}
    for name, result in results.items():
        assert result["steps"] == 3 and result["real_tokens_per_s"] > 0, name
        assert result["peak_rss_mib"] > 0 and result["time_to_first_step_s"] > 0
    lines = done.stdout.splitlines()
    assert any(line.startswith("tunelab vs tutorial: ") for line in lines)
    assert any(line.startswith("tunelab vs fair: ") for line in lines)
