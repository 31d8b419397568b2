"""Reconciliation: decide the fate of ``running`` jobs whose worker may be gone.

Run at start-up (``reconcile``) and periodically by every worker
(``requeue_expired``). A running job is lost when its lease has expired, or,
at start-up, when its worker id names this host and a process that no longer
exists (a restarted ``tunelab serve`` need not wait for the lease). Lost jobs
are requeued to resume from their last checkpoint, or failed with
``worker_lost`` once they used up ``max_attempts``.

Worker ids look like ``host:pid`` or ``host:pid:n``; that is what lets a
restarted process recognise its dead predecessor on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time

import psutil
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.jobs.queue import handle_lost_job
from tunelab.jobs.states import JobStatus
from tunelab.store.models import Job, utcnow


def make_worker_id(suffix: str | int | None = None) -> str:
    base = f"{socket.gethostname()}:{os.getpid()}"
    return base if suffix is None else f"{base}:{suffix}"


def _local_pid(worker_id: str | None) -> int | None:
    """The worker's pid when its id names this host, else None."""
    parts = (worker_id or "").split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return None
    return int(parts[1])


def worker_is_dead(worker_id: str | None) -> bool:
    """True only when we can see for sure: same host and the pid is gone."""
    pid = _local_pid(worker_id)
    return pid is not None and pid != os.getpid() and not psutil.pid_exists(pid)


def requeue_expired(session: Session) -> list[tuple[str, str]]:
    """Handle every running job whose lease has expired; returns (job id, new status)."""
    now = utcnow()
    query = select(Job).where(Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now)
    out = []
    for job in session.scalars(query.with_for_update(skip_locked=True)).all():
        out.append((job.id, handle_lost_job(session, job, "lease expired")))
    session.commit()
    return out


def reconcile(session: Session) -> list[tuple[str, str]]:
    """Start-up pass over every running job: lost ones are requeued or failed."""
    now = utcnow()
    out = []
    query = select(Job).where(Job.status == JobStatus.RUNNING.value)
    for job in session.scalars(query.with_for_update(skip_locked=True)).all():
        expired = job.lease_expires_at is None or job.lease_expires_at < now
        if expired or worker_is_dead(job.worker_id):
            reason = "lease expired" if expired else f"worker {job.worker_id} is not running"
            out.append((job.id, handle_lost_job(session, job, reason)))
    session.commit()
    return out


def stop_stale_engine(pid: int | None, *, grace_s: float = 30.0) -> bool:
    """Make sure an engine left by a dead worker on this host has exited before we reuse its run dir.

    The engine gets SIGTERM when its worker dies (parent-death signal) and
    saves a checkpoint; we wait for that, then SIGKILL its process group.
    Returns True if a live engine was found.
    """
    if not pid or not psutil.pid_exists(pid):
        return False
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    if "tunelab.training" not in cmdline:
        return False  # the pid was reused by something else
    deadline = time.monotonic() + grace_s
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

