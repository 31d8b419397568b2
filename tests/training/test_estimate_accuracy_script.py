"""The estimate-accuracy benchmark runs end to end on the tiny model (so it cannot rot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "estimate_accuracy.py"


@pytest.mark.slow
def test_benchmark_compares_estimates_with_measurements(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(tiny_model_dir), "--steps", "2", "--batch-sizes", "1",
         "--lengths", "16", "--methods", "lora,full", "--json-out", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert {row["method"] for row in rows} == {"lora", "full"}
    for row in rows:
        assert row["peak_rss_bytes"] > 0 and row["step_s"] > 0
        assert row["estimated_bytes"] > 0 and row["estimated_step_s"] > 0
        assert row["memory_error"] == pytest.approx((row["estimated_bytes"] - row["peak_rss_bytes"]) / row["peak_rss_bytes"])
    assert "memory within 25%:" in done.stdout and "time within 35%:" in done.stdout
