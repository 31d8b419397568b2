"""The engine never imports web or database code."""

from __future__ import annotations

import subprocess
import sys


def test_training_imports_no_service_code() -> None:
    code = (
        "import sys, tunelab.training.run, tunelab.training.runner, tunelab.training.__main__\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'sqlalchemy', 'starlette')\n"
        "       or m.startswith(('tunelab.store', 'tunelab.api'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
