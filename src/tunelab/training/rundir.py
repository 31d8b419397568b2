"""The run directory: the engine's only output channel and the worker's contract.

``metrics.jsonl`` and ``events.jsonl`` are append-only JSON lines that the worker
tails; ``train.log`` is the human log. A ``Reporter`` receives the same events and
metrics in-process (the CLI's progress bar is one).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Protocol


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

    def pause_requested(self) -> bool:
        try:
            return self.control_path.read_text().strip().lower() == "pause"
        except OSError:
            return False

    def clear_control(self) -> None:
        self.control_path.unlink(missing_ok=True)
