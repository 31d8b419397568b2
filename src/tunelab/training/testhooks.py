"""Test hooks: hold the engine at a chosen point for a while, so fault tests can act there.

Off unless ``TUNELAB_TEST_HOOKS`` is set; never set it in production. The value
is a comma-separated list of ``POINT@STEP=SECONDS`` (``@STEP`` may be left out
to mean any step)::

    TUNELAB_TEST_HOOKS="step@3=70"         step 3 takes 70 s longer (a slow step)
    TUNELAB_TEST_HOOKS="checkpoint@6=30"   hold 30 s inside the save of checkpoint-6 (weights written,
                                           training state and manifest not yet)
    TUNELAB_TEST_HOOKS="output=30"         hold 30 s inside the final save (adapter written, the rest not)

Points: ``step`` (after the forward and backward passes, before the optimizer
step), ``checkpoint``, ``output``. Each hook fires once per run directory: it
first creates ``RUN_DIR/hook-<point>-<step>`` (which is how a test knows the
engine is there; kill it then), and a resumed engine finds the file and goes on,
so a killed run does not hit the same hook again. The engine does no heartbeat
while held, which is what a step that really is slow looks like to the worker.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "TUNELAB_TEST_HOOKS"


def _seconds(point: str, step: int) -> float | None:
    for item in os.environ.get(ENV, "").split(","):
        name, _, seconds = item.strip().partition("=")
        where, _, at = name.partition("@")
        if where != point or (at and at != str(step)):
            continue
        try:
            return float(seconds)
        except ValueError:
            return None
    return None


def hold(point: str, step: int, run_dir: Path) -> None:
    """Sleep here when the hooks say so (once per run directory); otherwise return at once."""
    if not os.environ.get(ENV):
        return
    seconds = _seconds(point, step)
    marker = Path(run_dir) / f"hook-{point}-{step}"
    if seconds is None or marker.exists():
        return
    marker.write_text(str(time.time()))
    time.sleep(seconds)
