"""The run directory: the engine's only output channel and the worker's contract.

``metrics.jsonl`` and ``events.jsonl`` are append-only JSON lines that the worker
tails; ``train.log`` is the human log. A ``Reporter`` receives the same events and
metrics in-process (the CLI's progress bar is one).

``heartbeat.json`` is rewritten (atomically) at every step boundary and around
checkpoint saves: the step reached, the phase, and ``stop_after``, the step at
whose end the engine would stop if asked now. The worker reads it to say
"pausing after step N" and to tell a slow engine (still making progress) from a
stuck one. ``exit.json`` is written as the engine exits: its exit code and
step, so a worker that was not watching (killed with the server) can still
tell a clean checkpointed stop from a crash.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Protocol

HEARTBEAT = "heartbeat.json"
EXIT = "exit.json"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, default=str), encoding="utf-8")
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    """A small JSON file written by ``write_json``, or None when absent or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def progress_mark(run_dir: Path) -> tuple[Any, ...]:
    """What changes while an engine makes progress: its run files, a checkpoint or the output being written.

    The worker compares two marks to tell a slow engine from a stuck one.
    """
    marks: list[Any] = []
    for name in (HEARTBEAT, "events.jsonl", "metrics.jsonl"):
        try:
            info = (run_dir / name).stat()
            marks.append((info.st_mtime_ns, info.st_size))
        except OSError:
            marks.append(None)
    folders = [*sorted((run_dir / "checkpoints").glob(".tmp-*")), run_dir / "output"]
    for folder in folders:
        try:
            marks.append((folder.name, sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())))
        except OSError:
            marks.append((folder.name, None))
    return tuple(marks)


def last_progress(run_dir: Path) -> float | None:
    """Unix time of the engine's newest heartbeat, event or metric line (None if it wrote none)."""
    times = []
    for name in (HEARTBEAT, "events.jsonl", "metrics.jsonl"):
        try:
            times.append((run_dir / name).stat().st_mtime)
        except OSError:
            continue
    return max(times) if times else None


def clean_exit(run_dir: Path) -> dict[str, Any] | None:
    """exit.json when the engine ended cleanly (completed, or stopped at a checkpoint: 0 or 75), else None."""
    info = read_json(run_dir / EXIT)
    return info if info is not None and info.get("exit_code") in (0, 75) else None


class Reporter(Protocol):
    """Receives what the engine writes to the run directory, as it happens."""

    def on_event(self, event: dict[str, Any]) -> None: ...

    def on_metrics(self, metrics: dict[str, Any]) -> None: ...


class RunFiles:
    """Writers for config.json, metrics.jsonl, events.jsonl and train.log."""

    def __init__(self, run_dir: Path, reporter: Reporter | None = None) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.dir / "checkpoints"
        self.output = self.dir / "output"
        self.metrics_path = self.dir / "metrics.jsonl"
        self.events_path = self.dir / "events.jsonl"
        self.control_path = self.dir / "control"
        self.reporter = reporter
        self.log = logging.getLogger(f"tunelab.training.run.{self.dir.resolve()}")
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        if not self.log.handlers:
            handler = logging.FileHandler(self.dir / "train.log", encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            self.log.addHandler(handler)

    def close(self) -> None:
        for handler in list(self.log.handlers):
            handler.close()
            self.log.removeHandler(handler)

    def write_config(self, data: dict[str, Any]) -> None:
        tmp = self.dir / "config.json.tmp"
        tmp.write_text(json.dumps(data, indent=2, default=str))
        tmp.replace(self.dir / "config.json")

    def event(self, type_: str, message: str, data: dict[str, Any] | None = None) -> None:
        record = {"time": time.time(), "type": type_, "message": message, "data": data or {}}
        with self.events_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
        level = logging.ERROR if type_ == "failed" else logging.INFO
        self.log.log(level, "[%s] %s %s", type_, message, json.dumps(data or {}, default=str))
        if self.reporter is not None:
            self.reporter.on_event(record)

    def metrics(self, values: dict[str, Any]) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(values) + "\n")
        self.log.info("metrics %s", json.dumps(values))
        if self.reporter is not None:
            self.reporter.on_metrics(values)

    def truncate_metrics(self, after_step: int) -> int:
        """Drop metric lines past ``after_step`` (they are replayed on resume); return how many."""
        if not self.metrics_path.exists():
            return 0
        kept, dropped = [], 0
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                step = json.loads(line).get("step", 0)
            except json.JSONDecodeError:
                dropped += 1
                continue
            if step > after_step:
                dropped += 1
            else:
                kept.append(line)
        self.metrics_path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
        return dropped

    def heartbeat(self, step: int, phase: str, stop_after: int | None) -> None:
        """Rewrite heartbeat.json: progress the worker can see even when no metric line is due."""
        with contextlib.suppress(OSError):  # a full disk is reported by the save that needs the space
            write_json(self.dir / HEARTBEAT, {"time": time.time(), "step": step, "phase": phase,
                                              "stop_after": stop_after})

    def pause_requested(self) -> bool:
        try:
            return self.control_path.read_text().strip().lower() == "pause"
        except OSError:
            return False

    def clear_control(self) -> None:
        self.control_path.unlink(missing_ok=True)
