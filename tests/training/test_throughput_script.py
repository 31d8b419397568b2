"""The training benchmark runs end to end on the tiny model (so its baselines cannot rot)."""

from __future__ import annotations

import importlib.util
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
         "--max-length", "64", "--order", "once", "--json-out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    # the strong baseline is skipped without TRL
    has_trl = importlib.util.find_spec("trl") is not None
    assert set(results) == {"tutorial", "fair", "tunelab"} | ({"trl"} if has_trl else set())
    for name, result in results.items():
        assert result["steps"] == 3 and result["real_tokens_per_s"] > 0, name
        assert result["peak_rss_mib"] > 0 and result["time_to_first_step_s"] > 0
    lines = done.stdout.splitlines()
    assert any(line.startswith("tunelab vs tutorial: ") for line in lines)
    assert any(line.startswith("tunelab vs fair: ") for line in lines)
    if has_trl:
        assert any(line.startswith("tunelab vs trl: ") for line in lines)
        assert results["trl"]["packed_rows_per_step"] >= 1
    else:
        assert any(line.startswith("TRL is not installed") for line in lines)


def test_abba_runs_each_variant_twice_in_mirrored_order() -> None:
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.schedule(["trl", "tunelab"], "abba") == ["trl", "tunelab", "tunelab", "trl"]
    assert module.schedule(["trl", "tunelab"], "once") == ["trl", "tunelab"]
    runs = [{key: float(i) for key in module.MEANED} for i in (1, 3)]
    combined = module.combine(runs)
    assert combined["real_tokens_per_s"] == 2.0 and len(combined["runs"]) == 2


def test_peak_rss_is_the_workers_own_not_the_drivers() -> None:
    """Linux carries the parent's RSS at fork into a child's ``ru_maxrss``; ``VmHWM`` is the child's alone."""
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ballast = bytearray(400 * 1024**2)  # a driver with 400 MiB more resident than its workers need
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])
    child = ("import importlib.util, json, resource, sys; "
             f"spec = importlib.util.spec_from_file_location('t', {str(SCRIPT)!r}); m = importlib.util.module_from_spec(spec); "
             "spec.loader.exec_module(m); "
             "print(json.dumps([m.own_peak_rss_mib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))")  # fmt: skip
    own, inherited = json.loads(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                                               check=True).stdout)  # fmt: skip
    del ballast
    assert 0 < own < 300, own  # the child itself: an interpreter and a small script
    assert inherited > own + 300, (own, inherited)
