"""`benchmarks/api_load.py` runs end to end on the tiny model with a small load (so it cannot rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "api_load.py"


@pytest.mark.timeout(600)
def test_load_benchmark_prints_its_table_in_a_b_b_a_order(tiny_model_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(tiny_model_dir), "--clients", "3", "--streams", "2",
         "--seconds", "3", "--warmup-steps", "1", "--batch-size", "2"],
        capture_output=True, text=True, timeout=580,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("window"))
    arms = [line.split()[1] for line in lines[start + 2 : start + 6]]
    assert arms == ["idle", "load", "load", "idle"]
    load = lines[start + 3].split()
    assert int(load[2]) > 0 and load[3] == "0" and load[7] == "2"  # requests, no errors, both streams open
    assert lines[start].split()[-5:] == ["loadavg", "cpu%", "srv", "eng", "cli"]
    assert float(load[11]) >= 0 and float(load[12]) > 0 and float(load[14]) > 0  # server and client used CPU
    assert lines[start + 6].startswith("load: 3 clients (a read every 1 s each) + 2 SSE streams") and lines[start + 7].startswith("targets:")
