"""A job's event stream in the store, and the one function that changes a job's status.

Every status change, engine event, log line, metrics row and resource sample
becomes a ``job_events`` row whose autoincrement id is the stream cursor: a
client that reconnects with ``after=<last id>`` (SSE ``Last-Event-ID``) gets
exactly what it missed. Event types: ``status``, ``event``, ``log``,
``metrics``, ``resources``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.errors import InvalidInput, NotFound
from tunelab.jobs.states import JobStatus, check_transition
from tunelab.store.models import Job, JobEvent, utcnow

EVENT_TYPES = ("status", "event", "log", "metrics", "resources")


def add_event(session: Session, job_id: str, type_: str, data: dict[str, Any]) -> JobEvent:
    """Append one event (flushed, not committed: it commits with the caller's change)."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    event = JobEvent(job_id=job_id, type=type_, data=data)
    session.add(event)
    session.flush()
    return event


def list_events(
    session: Session,
    job_id: str,
    *,
    after: int = 0,
    limit: int = 500,
    types: Sequence[str] | None = None,
    before: int | None = None,
    newest_first: bool = False,
) -> list[JobEvent]:
    """Events with id > ``after`` (and < ``before``) in order, at most ``limit``; ``types`` filters by type.

    ``newest_first`` pages backwards from the newest (OpenAI's event list, which a remote follower reads).
    """
    if session.get(Job, job_id) is None:
        raise NotFound(f"no job with id {job_id!r}", "list jobs with `tunelab jobs list`")
    if types:
        unknown = sorted(set(types) - set(EVENT_TYPES))
        if unknown:
            raise InvalidInput(
                f"unknown event types {unknown}", f"use any of: {', '.join(EVENT_TYPES)}"
            )
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after)
    if before is not None:
        query = query.where(JobEvent.id < before)
    if types:
        query = query.where(JobEvent.type.in_(list(types)))
    limit = max(1, min(limit, 10_000))
    order = JobEvent.id.desc() if newest_first else JobEvent.id
    return list(session.scalars(query.order_by(order).limit(limit)))


def set_status(
    session: Session,
    job: Job,
    target: JobStatus | str,
    *,
    error: dict[str, Any] | None = None,
    **extra: Any,
) -> None:
    """Move ``job`` to ``target`` if the state machine allows it, recording a status event.

    Sets the timestamps that go with the status and clears the lease when the
    job leaves ``running``. Does not commit.
    """
    target = JobStatus(target)
    previous = job.status
    check_transition(job.id, previous, target)
    now = utcnow()
    job.status = target.value
    if target == JobStatus.RUNNING:
        job.started_at = job.started_at or now
    if previous == JobStatus.RUNNING:
        job.worker_id = None  # pid stays: the next worker checks the old engine is gone
        job.lease_expires_at = None
    if target.is_terminal():
        job.finished_at = now
        job.requested_action = None
    if error is not None:
        job.error = error
    data: dict[str, Any] = {"status": target.value, "previous": previous, **extra}
    if error is not None:
        data["error"] = error
    add_event(session, job.id, "status", data)
