"""Stop requests and interventions: SIGTERM, Ctrl-C (SIGINT) or the ``control`` file, between steps.

The handler only sets a flag; the loop finishes the current optimizer step, saves
a checkpoint and exits with code 75, so a stop never loses more than one step and
never leaves a half-written checkpoint. A second Ctrl-C is the way out when even
one step is too long: it raises KeyboardInterrupt at once (the last checkpoint
still resumes). SIGINT is left alone when the parent ignored it (``cmd &``).

``RUN_DIR/control`` is the one channel into a running engine (the job worker
writes it; a person may too). One command per line::

    pause                                               stop after this step (checkpoint, exit 75)
    {"id": 7, "action": "checkpoint"}                   save a checkpoint now, keep training
    {"id": 8, "action": "learning_rate", "value": 1e-4} the next step runs at 1e-4
    {"id": 9, "action": "stop_early"}                   end now with the current weights (completed)

The worker rewrites the whole file atomically with every request of the
attempt, each with a rising ``id``; the engine applies each id once, so a
rewrite never repeats a request and no request is lost between a write and a
read. A hand-written command without an id (``echo checkpoint > control``, or
``learning_rate 1e-4``) is applied once and the file is removed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any

from tunelab.training.rundir import RunFiles

_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}

#: Interventions the control file carries besides ``pause`` (jobs.states.INTERVENTIONS mirrors them).
INTERVENTIONS = ("checkpoint", "learning_rate", "stop_early")


@dataclass(frozen=True)
class Command:
    """One intervention read from the control file; ``id`` is None for a hand-written line."""

    action: str
    id: int | None = None
    value: float | None = None

    def line(self) -> str:
        """The control-file line for this command (what ``parse_line`` reads back)."""
        body: dict[str, Any] = {"id": self.id, "action": self.action}
        if self.value is not None:
            body["value"] = self.value
        return json.dumps(body)


def parse_line(line: str) -> Command | str | None:
    """A control line as a Command, the string ``"pause"``, or None when it means nothing."""
    text = line.strip()
    if not text:
        return None
    if text.lower() == "pause":
        return "pause"
    if text.startswith("{"):
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            return None
        if not isinstance(body, dict):
            return None
        action, ident, value = body.get("action"), body.get("id"), body.get("value")
    else:
        words = text.split()
        action, ident = words[0].lower().replace("-", "_"), None
        value = words[1] if len(words) > 1 else None
    if action == "pause":
        return "pause"
    if action not in INTERVENTIONS or (ident is not None and not isinstance(ident, int)):
        return None
    number: float | None = None
    if action == "learning_rate":
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number) or number <= 0:
            return None
    return Command(str(action), ident, number)


def write_control(path: os.PathLike[str] | str, commands: list[Command], pause: bool = False) -> None:
    """Replace the control file atomically with ``commands`` (and ``pause``): the worker's writer."""
    lines = [command.line() for command in commands] + (["pause"] if pause else [])
    target = os.fspath(path)
    tmp = f"{target}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
    os.replace(tmp, target)


class ControlChannel:
    """Reads RUN_DIR/control between steps: new interventions once each, and the pause flag.

    Cheap enough to call every step: one ``stat``, and a read only when the file changed.
    """

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = os.fspath(path)
        self.pause = False
        self._seen: set[int] = set()
        self._stamp: tuple[int, int] | None = None

    def poll(self) -> list[Command]:
        """Commands not applied yet, in file order; sets ``pause`` when the file says so."""
        try:
            info = os.stat(self.path)
        except OSError:
            self._stamp = None
            return []
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return []
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            return []
        self._stamp = stamp
        new: list[Command] = []
        by_hand = False
        for line in text.splitlines():
            parsed = parse_line(line)
            if parsed == "pause":
                self.pause = True
            elif isinstance(parsed, Command):
                if parsed.id is None:
                    by_hand = True
                    new.append(parsed)
                elif parsed.id not in self._seen:
                    self._seen.add(parsed.id)
                    new.append(parsed)
        if by_hand and not self.pause:
            # Hand-written lines have no id to remember; removing the file applies them once.
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self._stamp = None
        return new


class StopSignal:
    """Set by SIGTERM / first SIGINT (main thread only) or by RUN_DIR/control containing 'pause'."""

    def __init__(self, files: RunFiles) -> None:
        self.files = files
        self.control = ControlChannel(files.control_path)
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

    def poll(self) -> list[Command]:
        """Read the control file once (call once per step): new interventions; notes a pause."""
        commands = self.control.poll()
        if self.reason is None and self.control.pause:
            self.reason = "pause requested"
        return commands

    def requested(self) -> bool:
        """A stop was asked for: a signal, or a ``pause`` line seen by the last ``poll``."""
        if self.reason is None and self.control.pause:
            self.reason = "pause requested"
        return self.reason is not None
