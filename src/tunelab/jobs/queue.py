"""The queue: atomic claim, leases renewed by heartbeat, and giving a job back.

Claiming is a compare-and-swap that works the same on both databases: the
candidate is read with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; ignored by
SQLite, whose ``BEGIN IMMEDIATE`` already serialises writers) and then updated
``WHERE id = ? AND status = 'queued'``; only the transaction that changed the
row owns the job. Highest priority first, then oldest. With the claiming
worker's ``resources`` the candidate must also fit it (``jobs.resources.fits``,
in the same locked query), so a GPU job is never claimed by a CPU-only worker.

A worker owns a running job while ``jobs.worker_id`` is its id and the lease
has not expired. ``heartbeat`` extends the lease and tells the worker what the
user asked for (pause, cancel) or that it lost the job (``LeaseLost``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, true, update
from sqlalchemy.orm import Session, sessionmaker

from tunelab.jobs.events import add_event, set_status
from tunelab.jobs.resources import Resources, fits_worker
from tunelab.jobs.states import JobStatus, check_transition
from tunelab.store.db import begin_write, immediate_session
from tunelab.store.models import Job, utcnow
from tunelab.training.rundir import clean_exit


class LeaseLost(Exception):
    """The job is no longer ours (requeued by reconciliation, or cancelled)."""


@dataclass
class Heartbeat:
    """What the worker learns at each heartbeat."""

    status: str
    requested_action: str | None


def claim_next_job(
    factory: sessionmaker[Session], worker_id: str, *, lease_s: float, attempts: int = 3,
    resources: Resources | None = None,
) -> Job | None:
    """Claim the next queued job for ``worker_id`` (status -> running), or None if none.

    ``resources`` (the worker's GPUs, RAM, MPS) limits the claim to jobs that
    fit them; None takes any job (an embedded worker in a test).
    """
    for _ in range(attempts):
        session = immediate_session(factory)
        try:
            query = (
                select(Job.id)
                .where(Job.status == JobStatus.QUEUED.value)
                .where(fits_worker(resources) if resources is not None else true())
                .order_by(Job.priority, Job.created_at, Job.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            job_id = session.scalars(query).first()
            if job_id is None:
                session.rollback()
                return None
            # The compare-and-swap below only moves queued -> running; saying so
            # through the state machine keeps it the one place for the rule.
            check_transition(job_id, JobStatus.QUEUED, JobStatus.RUNNING)
            now = utcnow()
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value)
                .values(
                    status=JobStatus.RUNNING.value,
                    worker_id=worker_id,
                    heartbeat_at=now,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    requested_action=None,
                    wait_reason=None,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # someone else won the race
                session.rollback()
                continue
            job = session.get(Job, job_id, populate_existing=True)
            assert job is not None
            job.attempts = max(job.attempts, 1)
            job.started_at = job.started_at or now
            add_event(
                session,
                job.id,
                "status",
                {"status": "running", "previous": "queued", "worker_id": worker_id, "attempt": job.attempts},
            )
            session.commit()
            return job
        finally:
            session.close()
    return None


def owned_job(session: Session, job_id: str, worker_id: str) -> Job:
    """The job if ``worker_id`` still runs it, else LeaseLost."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.status != JobStatus.RUNNING or job.worker_id != worker_id:
        raise LeaseLost(job_id)
    return job


def heartbeat(
    factory: sessionmaker[Session], job_id: str, worker_id: str, *, lease_s: float, **fields: Any
) -> Heartbeat:
    """Extend the lease (and set fields such as ``pid``, ``progress``); LeaseLost if not ours."""
    with factory() as session:
        begin_write(session)  # it reads, then writes: beside another writer of the job (SQLite), wait, never fail
        job = owned_job(session, job_id, worker_id)
        now = utcnow()
        job.heartbeat_at = now
        job.lease_expires_at = now + timedelta(seconds=lease_s)
        for key, value in fields.items():
            setattr(job, key, value)
        session.commit()
        return Heartbeat(status=job.status, requested_action=job.requested_action)


def finish_job(
    factory: sessionmaker[Session],
    job_id: str,
    worker_id: str,
    target: JobStatus,
    *,
    error: dict[str, Any] | None = None,
    **extra: Any,
) -> bool:
    """Move our running job to its outcome; False if it was no longer ours."""
    with factory() as session:
        try:
            job = owned_job(session, job_id, worker_id)
        except LeaseLost:
            return False
        set_status(session, job, target, error=error, **extra)
        if target in (JobStatus.QUEUED, JobStatus.PAUSED):
            job.requested_action = None
        session.commit()
        return True


def handle_lost_job(session: Session, job: Job, reason: str) -> str:
    """Requeue a running job whose worker is gone (attempts+1), or fail it as worker_lost.

    An engine that stopped cleanly at a checkpoint before anyone saw its exit
    (``exit.json`` says 0 or 75: it got SIGTERM when its worker or server was
    killed) costs no attempt; nor does a job training on a remote provider,
    whose remote job trains on while the next worker follows it.
    """
    if job.provider != "local":
        set_status(session, job, JobStatus.QUEUED, reason=f"{reason}; the remote job on provider "
                   f"{job.provider!r} trains on and the next worker follows it", attempt=job.attempts)
        return job.status
    clean = clean_exit(Path(job.run_dir)) if job.run_dir else None
    if clean is not None:
        set_status(session, job, JobStatus.QUEUED, reason=f"{reason}; the engine had stopped cleanly at step "
                   f"{clean.get('step')}", attempt=job.attempts, clean_exit=True)
        return job.status
    if job.attempts >= job.max_attempts:
        set_status(
            session,
            job,
            JobStatus.FAILED,
            error={
                "code": "worker_lost",
                "message": f"the worker running this job was lost {job.attempts} time(s): {reason}",
                "hint": "check the worker machine; retry the job to run it again from scratch",
            },
        )
    else:
        job.attempts += 1
        set_status(session, job, JobStatus.QUEUED, reason=reason, attempt=job.attempts)
    return job.status
