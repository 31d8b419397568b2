"""A remote job's events, metrics and checkpoints as this studio's own job events and metrics.

Each remote event becomes what the dashboard, the stream and the SDK already
read: a metrics event (and a ``metrics`` row, upserted by step through the
tailer's ``upsert_metric``, OpenAI's ``train_loss``/``valid_loss`` included),
a log line, or an ``event`` row. A tunelab remote's engine events (``started``,
``checkpoint_saved``, ``completed`` ...) keep their type and data, so progress
and trained tokens read the same as for a local run; its resource samples
(another machine's) are left out. The caller stores the id of the newest
event in ``jobs.remote.after`` in the same transaction, which is what makes a
restarted worker continue without storing an event twice.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from tunelab.jobs.events import add_event
from tunelab.jobs.tailer import upsert_metric
from tunelab.providers.base import RemoteEvent, RemoteJob
from tunelab.store.models import Job

#: Remote event types of a tunelab studio that are not ours to replay (requests there are not requests here).
SKIPPED = {"resources"}


def metric_values(data: dict[str, Any]) -> dict[str, Any] | None:
    """A metrics event's values with ``step``; None when it has no step."""
    values = {key: value for key, value in data.items() if key != "type"}
    step = values.get("step")
    return values if isinstance(step, int | float) and not isinstance(step, bool) else None


def _progress(job: Job, values: dict[str, Any]) -> None:
    step = int(values["step"])
    job.global_step = max(job.global_step or 0, step)
    total = values.get("total_steps") or (job.tail_state or {}).get("total_steps")
    if isinstance(values.get("progress"), int | float):
        job.progress = float(values["progress"])
    elif isinstance(total, int | float) and total > 0:
        job.progress = round(min(1.0, step / total), 4)


def _event_row(remote: RemoteJob, event: RemoteEvent) -> tuple[str, dict[str, Any]] | None:
    """(local event type, data) for one non-metrics remote event; None to leave it out."""
    data, kind = event.data, str(event.data.get("type") or "")
    origin = {"provider": remote.provider, "event_id": event.id}
    if kind in SKIPPED:
        return None
    if kind == "log":
        return "log", {"line": str(data.get("line", event.message)), "remote": origin}
    if kind and kind not in ("status", "message", "event"):  # a tunelab engine event: keep its type and data
        own = {key: value for key, value in data.items() if key != "remote"}
        if kind.endswith("_requested"):  # the remote's own requests; never ours to relay
            own["type"] = f"remote_{kind}"
        return "event", {**own, "remote": origin}
    return "event", {
        "time": event.created_at or time.time(), "type": "remote_status" if kind == "status" else "remote_message",
        "level": event.level, "message": f"{remote.provider}: {event.message}",
        "data": {key: value for key, value in data.items() if key != "type"}, "remote": origin,
    }  # fmt: skip


def record_events(session: Session, job: Job, remote: RemoteJob, events: list[RemoteEvent]) -> int:
    """Store ``events`` (oldest first) for ``job`` and move ``remote.after`` past them; returns how many."""
    for event in events:
        values = metric_values(event.data) if event.type == "metrics" or event.data.get("type") == "metrics" else None
        if values is not None:
            upsert_metric(session, job.id, values)
            _progress(job, values)
            add_event(session, job.id, "metrics", values)
        else:
            row = _event_row(remote, event)
            if row is not None:
                if row[0] == "event" and row[1].get("type") in ("started", "stopped_early"):
                    total = (row[1].get("data") or {}).get("total_steps")
                    if isinstance(total, int):
                        job.tail_state = {**(job.tail_state or {}), "total_steps": total}
                add_event(session, job.id, row[0], row[1])
        remote.after = event.id
    return len(events)


def record_checkpoints(session: Session, job: Job, remote: RemoteJob, found: list[dict[str, Any]]) -> None:
    """Keep the remote checkpoints in ``remote.checkpoints``; each new one is also an event."""
    known = {checkpoint["id"] for checkpoint in remote.checkpoints}
    for checkpoint in found:
        if checkpoint["id"] in known:
            continue
        remote.checkpoints.append(checkpoint)
        add_event(session, job.id, "event", {
            "time": time.time(), "type": "remote_checkpoint",
            "message": f"{remote.provider} saved a checkpoint at step {checkpoint.get('step')}: {checkpoint.get('model')}",
            "data": checkpoint,
        })  # fmt: skip
