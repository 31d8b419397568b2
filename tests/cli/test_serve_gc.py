"""`tunelab serve` freezes what is alive at startup, so full collections stop walking it (``settle_garbage_collector``)."""

from __future__ import annotations

import subprocess
import sys


def test_the_server_freezes_its_startup_objects() -> None:
    script = (
        "import gc, time\n"
        "from tunelab.api import create_app\n"
        "from tunelab.cli.serve import settle_garbage_collector\n"
        "app = create_app()\n"
        "t = time.perf_counter(); gc.collect(); before = time.perf_counter() - t\n"
        "settle_garbage_collector()\n"
        "t = time.perf_counter(); gc.collect(); after = time.perf_counter() - t\n"
        "print(gc.get_freeze_count(), before, after)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    frozen, before, after = done.stdout.split()
    assert int(frozen) > 50_000  # the app's modules and objects
    assert float(after) < float(before) / 3  # a full collection no longer walks them
