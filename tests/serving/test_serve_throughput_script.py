"""The serving benchmark runs end to end on the tiny model (so its arms cannot rot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_throughput.py"


@pytest.mark.slow
def test_benchmark_runs_every_arm_and_prints_the_ratios(varied_dir: Path, tmp_path: Path, tunelab_home: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--model", str(varied_dir), "--clients", "3",
                           "--max-tokens", "4", "--once", "--json-out", str(out)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results) == {"batched", "one-at-a-time"}
    for arm, result in results.items():
        assert result["tokens"] > 0 and result["tokens_per_s"] > 0 and result["p99_s"] >= result["p50_s"] > 0, arm
        assert len(result["texts"]) == 3
    assert results["batched"]["texts"] == results["one-at-a-time"]["texts"]  # batching changes no reply
    assert "batched vs one-at-a-time:" in done.stdout
