"""The root command: version, and usage errors as one message instead of a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tunelab


def _tunelab(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"TUNELAB_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tunelab", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )


def test_version_flag_prints_the_package_version(tmp_path: Path) -> None:
    done = _tunelab(tmp_path, "--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"tunelab {tunelab.__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("jobs", "lst"), "No such command 'lst'"),
        (("train",), "Missing argument"),
        (("train", "--bogus", "x"), "No such option: --bogus"),
    ],
)
def test_usage_errors_are_one_message_without_traceback(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    done = _tunelab(tmp_path, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert "--help" in done.stderr
