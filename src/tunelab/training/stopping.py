"""Stop requests: SIGTERM, Ctrl-C (SIGINT) or a ``pause`` control file, honoured between steps.

The handler only sets a flag; the loop finishes the current optimizer step, saves
a checkpoint and exits with code 75, so a stop never loses more than one step and
never leaves a half-written checkpoint. A second Ctrl-C is the way out when even
one step is too long: it raises KeyboardInterrupt at once (the last checkpoint
still resumes). SIGINT is left alone when the parent ignored it (``cmd &``).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from tunelab.training.rundir import RunFiles

_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}


class StopSignal:
    """Set by SIGTERM / first SIGINT (main thread only) or by RUN_DIR/control containing 'pause'."""

    def __init__(self, files: RunFiles) -> None:
        self.files = files
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}
        self._interrupts = 0

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._handle)
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._handle)

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts > 1:
                raise KeyboardInterrupt
            # os.write, not print: a handler may run in the middle of another write to stderr.
            os.write(2, b"\nStopping after the current step and saving a checkpoint "
                        b"(press Ctrl-C again to abort now).\n")
        self.reason = self.reason or _NAMES.get(signal.Signals(signum), str(signum))

    def requested(self) -> bool:
        if self.reason is None and self.files.pause_requested():
            self.reason = "pause requested"
        return self.reason is not None
