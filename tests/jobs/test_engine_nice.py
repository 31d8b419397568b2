"""``TUNELAB_ENGINE_NICE``: the engine's child sets its nice value before exec, and a value it did not get is reported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tunelab.jobs.supervisor import _engine_preexec, nice_problem
from tunelab.settings import Settings

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice values per process: Linux")
PRINT_NICE = "import os, time; print(os.getpriority(os.PRIO_PROCESS, 0), flush=True); time.sleep(30)"


def _start(nice: int | None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", PRINT_NICE], stdout=subprocess.PIPE, text=True,
                            preexec_fn=_engine_preexec(nice))  # fmt: skip


def test_the_engine_child_runs_at_the_nice_value_and_its_children_inherit_it() -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    wanted = min(19, own + 7)  # raising the value needs no privilege
    proc = _start(wanted)
    try:
        assert proc.stdout is not None and int(proc.stdout.readline()) == wanted  # seen from inside the engine
        assert nice_problem(proc.pid, wanted) is None
    finally:
        proc.kill()
        proc.wait()


def test_unset_leaves_the_engine_at_the_workers_priority() -> None:
    proc = _start(None)
    try:
        assert proc.stdout is not None and int(proc.stdout.readline()) == os.getpriority(os.PRIO_PROCESS, 0)
        assert nice_problem(proc.pid, None) is None
    finally:
        proc.kill()
        proc.wait()


def test_a_value_the_engine_did_not_get_is_reported_with_the_fix() -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    proc = _start(min(19, own + 5))  # the engine ended up at another value than the one asked for
    try:
        assert proc.stdout is not None and proc.stdout.readline()
        problem = nice_problem(proc.pid, own)
        assert problem is not None and problem["data"] == {"wanted": own, "actual": min(19, own + 5)}
        assert "CAP_SYS_NICE" in problem["message"] and "TUNELAB_ENGINE_NICE" in problem["message"]
    finally:
        proc.kill()
        proc.wait()


def test_the_setting_is_bounded_like_nice_itself() -> None:
    assert Settings(engine_nice=-20).engine_nice == -20 and Settings().engine_nice is None
    with pytest.raises(ValueError):
        Settings(engine_nice=20)
