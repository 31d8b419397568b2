"""The scaling benchmark runs end to end on tiny sizes (so it cannot rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "dataset_scaling.py"


def test_benchmark_prints_a_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--sizes", "50KB,100KB", "--dir", str(tmp_path / "bench")],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert lines[-4].startswith("| file size | rows | seconds")
    assert lines[-2].startswith("| 50KB |") and lines[-1].startswith("| 100KB |")
    assert list((tmp_path / "bench").iterdir()) == []  # generated files are removed
