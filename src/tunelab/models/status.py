"""Where the models package talks to the user and decides whether the Hub may be used.

Conversions and downloads take seconds to minutes, so they show a rich status
line on stderr (stdout stays clean for piping); callers that render their own
progress pass ``progress=False``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from tunelab.settings import get_settings

_TRUE = {"1", "true", "yes", "on"}


def is_offline() -> bool:
    """True when tunelab must not contact the Hub (settings or HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE)."""
    if get_settings().offline:
        return True
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@contextmanager
def status_line(message: str, *, enabled: bool = True) -> Iterator[None]:
    """Show a spinner with ``message`` on stderr while the block runs."""
    if not enabled:
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


def note(message: str, *, enabled: bool = True) -> None:
    """Print one line on stderr."""
    if enabled:
        from rich.console import Console

        Console(stderr=True).print(message, highlight=False)
