"""Tail a run directory into the store, exactly once, across worker crashes.

The engine appends to ``metrics.jsonl``, ``events.jsonl`` and ``train.log``.
We read only complete lines and keep, per file, the byte offset reached plus a
fingerprint of the bytes just before it, in ``jobs.tail_state``, committed in
the same transaction as the rows made from those lines. A new worker taking
over a job therefore continues where the last commit stopped: no line is
stored twice, none is skipped.

On resume the engine rewrites ``metrics.jsonl`` without the steps after the
checkpoint (they are replayed). The fingerprint no longer matches, so we read
the file again from the start; metrics are upserted by ``(job, step)``, which
makes the replay overwrite rather than duplicate.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.jobs.events import add_event
from tunelab.store.models import Artifact, Checkpoint, Job, Metric
from tunelab.training.checkpoint import PREFIX as CHECKPOINT_PREFIX
from tunelab.training.checkpoint import list_checkpoints as list_checkpoint_dirs

# events first: the "started" event carries total_steps, which turns steps into progress.
FILES = ("events.jsonl", "metrics.jsonl", "train.log")
_FINGERPRINT_BYTES = 64
_MAX_READ = 4 * 1024 * 1024
METRIC_COLUMNS = {
    "epoch": "epoch",
    "loss": "loss",
    "train_loss": "loss",
    "eval_loss": "eval_loss",
    "valid_loss": "eval_loss",  # OpenAI's name (metrics events of a remote provider)
    "learning_rate": "learning_rate",
    "lr": "learning_rate",
    "grad_norm": "grad_norm",
    "tokens_per_second": "tokens_per_second",
    "progress": "progress",
    "eta_s": "eta_s",
    "eta": "eta_s",
}


def _fingerprint(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def read_new_lines(path: Path, state: dict[str, Any]) -> tuple[list[str], dict[str, Any], bool]:
    """Complete new lines of ``path`` after ``state``; returns (lines, new state, restarted)."""
    offset, mark = int(state.get("offset", 0)), state.get("mark", "")
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            restarted = False
            if offset:
                start = max(0, offset - _FINGERPRINT_BYTES)
                fh.seek(start)
                before = fh.read(offset - start)
                if size < offset or _fingerprint(before) != mark:
                    offset, restarted = 0, True
            fh.seek(offset)
            chunk = fh.read(min(size - offset, _MAX_READ))
    except FileNotFoundError:
        return [], state, False
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], ({"offset": 0, "mark": ""} if restarted else state), restarted
    body = chunk[: end + 1]
    new_offset = offset + len(body)
    with path.open("rb") as fh:
        start = max(0, new_offset - _FINGERPRINT_BYTES)
        fh.seek(start)
        mark = _fingerprint(fh.read(new_offset - start))
    lines = body.decode("utf-8", errors="replace").splitlines()
    return [line for line in lines if line.strip()], {"offset": new_offset, "mark": mark}, restarted


def _parse(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def upsert_metric(session: Session, job_id: str, values: dict[str, Any]) -> Metric | None:
    """Insert or merge one metrics line by step; returns the row."""
    step = values.get("step", values.get("global_step"))
    if not isinstance(step, int | float):
        return None
    row = session.scalars(
        select(Metric).where(Metric.job_id == job_id, Metric.step == int(step))
    ).first()
    if row is None:
        row = Metric(job_id=job_id, step=int(step), data={})
        session.add(row)
    extra = dict(row.data or {})
    for key, value in values.items():
        if key in ("step", "global_step", "type"):
            continue
        column = METRIC_COLUMNS.get(key)
        if column and (value is None or isinstance(value, int | float)):
            if value is not None:
                setattr(row, column, float(value))
        else:
            extra[key] = value
    row.data = extra
    return row


def _record_event(session: Session, job: Job, event: dict[str, Any]) -> None:
    kind = str(event.get("type", ""))
    data = event.get("data") or {}
    if kind in ("checkpoint", "checkpoint_saved") and isinstance(data.get("step"), int):
        exists = session.scalars(
            select(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.step == data["step"])
        ).first()
        if exists is None:
            session.add(Checkpoint(job_id=job.id, step=data["step"], path=str(data.get("path", ""))))
    # "stopped_early" moves the end to the current step, so progress reaches 100% there.
    if kind in ("started", "stopped_early") and isinstance(data.get("total_steps"), int):
        job.tail_state = {**(job.tail_state or {}), "total_steps": data["total_steps"]}
    if kind == "failed":
        failure = {"message": event.get("message", ""), **data}
        job.tail_state = {**(job.tail_state or {}), "failure": failure}
    add_event(session, job.id, "event", event)


def ingest(session: Session, job: Job, run_dir: Path) -> int:
    """Store everything new in the run directory for ``job``; returns the number of lines."""
    state = {name: (job.tail_state or {}).get(name, {}) for name in FILES}
    total = 0
    for name in FILES:
        lines, state[name], restarted = read_new_lines(run_dir / name, state.get(name, {}))
        if restarted:
            add_event(session, job.id, "event", {"type": "rewound", "data": {"file": name}})
        for line in lines:
            total += 1
            if name == "train.log":
                add_event(session, job.id, "log", {"line": line})
                continue
            parsed = _parse(line)
            if parsed is None:
                continue
            if name == "metrics.jsonl":
                row = upsert_metric(session, job.id, parsed)
                if row is not None:
                    job.global_step = row.step
                    total_steps = (job.tail_state or {}).get("total_steps")
                    if row.progress is not None:
                        job.progress = row.progress
                    elif total_steps:
                        job.progress = round(min(1.0, row.step / total_steps), 4)
                add_event(session, job.id, "metrics", parsed)
            else:
                _record_event(session, job, parsed)
    job.tail_state = {**(job.tail_state or {}), **state}
    sync_checkpoints(session, job, run_dir)
    return total


def sync_checkpoints(session: Session, job: Job, run_dir: Path) -> None:
    """Make the job's checkpoint rows mirror ``checkpoints/`` on disk.

    The engine deletes the oldest checkpoints beyond ``save_total_limit``, so a
    row whose folder is gone is removed, and a complete folder without a row
    (its event not read yet) gets one. A row goes only once a *newer*
    checkpoint exists on disk, which is exactly when the engine prunes: the
    latest checkpoint stays listed even while the engine rewrites it (remove,
    then rename) or after someone deletes the run folder.
    """
    on_disk = {
        int(path.name[len(CHECKPOINT_PREFIX) :]): path
        for path in list_checkpoint_dirs(run_dir / "checkpoints")
    }
    if not on_disk:
        return
    newest = max(on_disk)
    known = set()
    for row in session.scalars(select(Checkpoint).where(Checkpoint.job_id == job.id)):
        if row.step in on_disk:
            known.add(row.step)
        elif row.step < newest:
            session.delete(row)
    for step, path in sorted(on_disk.items()):
        if step not in known:
            session.add(Checkpoint(job_id=job.id, step=step, path=str(path)))


def record_outputs(session: Session, job: Job, run_dir: Path) -> list[Artifact]:
    """Register every file under ``output/`` (and the log) as an artifact; idempotent."""
    rows = []
    known = {a.path for a in session.scalars(select(Artifact).where(Artifact.job_id == job.id))}
    candidates = sorted(p for p in (run_dir / "output").rglob("*") if p.is_file())
    candidates += [p for p in (run_dir / "train.log", run_dir / "config.json") if p.is_file()]
    for path in candidates:
        relative = path.relative_to(run_dir).as_posix()
        if relative in known:
            continue
        parts = relative.split("/")
        if parts[0] == "output":
            kind = parts[1] if len(parts) > 2 else "output"
        else:
            kind = "log" if path.suffix == ".log" else "config"
        row = Artifact(job_id=job.id, kind=kind, path=relative, size=path.stat().st_size)
        session.add(row)
        rows.append(row)
    return rows
