"""Reconciliation: decide the fate of ``running`` jobs whose worker may be gone.

Run at start-up (``reconcile``) and periodically by every worker
(``requeue_expired``). A running job is lost when its lease has expired, or,
at start-up, when its worker id names this host and a process that no longer
exists (a restarted ``tunelab serve`` need not wait for the lease). Lost jobs
are requeued to resume from their last checkpoint, or failed with
``worker_lost`` once they used up ``max_attempts``. A job whose engine still
runs on this host and shows progress (it got SIGTERM from its dead worker and
is finishing the step) is left until the engine exits; one whose engine then
exited cleanly (``exit.json``: 0 or 75) is requeued without using an attempt.

Worker ids look like ``host:pid`` or ``host:pid:n``; that is what lets a
restarted process recognise its dead predecessor on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import psutil
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.jobs.queue import handle_lost_job
from tunelab.jobs.states import JobStatus
from tunelab.store.models import Job, utcnow
from tunelab.training.rundir import last_progress, progress_mark


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


def engine_still_stopping(job: Job, no_progress_s: float) -> bool:
    """The job's engine still runs on this host and showed progress lately: wait for its exit.

    A worker that dies leaves its engine finishing the step and saving a
    checkpoint (parent-death SIGTERM); deciding the job before that exit would
    charge an attempt for a clean stop. A stuck engine (no progress for
    ``no_progress_s``) is decided on, and the next supervisor kills it.
    """
    pid = job.pid
    if not pid or _local_pid(job.worker_id) is None or not job.run_dir or not _alive(pid):
        return False
    try:
        if "tunelab.training" not in " ".join(psutil.Process(pid).cmdline()):
            return False
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    seen = last_progress(Path(job.run_dir))
    return seen is not None and time.time() - seen < no_progress_s


def requeue_expired(session: Session, no_progress_s: float = 900.0) -> list[tuple[str, str]]:
    """Handle every running job whose lease has expired; returns (job id, new status)."""
    now = utcnow()
    query = select(Job).where(Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now)
    out = []
    for job in session.scalars(query.with_for_update(skip_locked=True)).all():
        if engine_still_stopping(job, no_progress_s):
            continue
        out.append((job.id, handle_lost_job(session, job, "lease expired")))
    session.commit()
    return out


def reconcile(session: Session, no_progress_s: float = 900.0) -> list[tuple[str, str]]:
    """Start-up pass over every running job: lost ones are requeued or failed."""
    now = utcnow()
    out = []
    query = select(Job).where(Job.status == JobStatus.RUNNING.value)
    for job in session.scalars(query.with_for_update(skip_locked=True)).all():
        expired = job.lease_expires_at is None or job.lease_expires_at < now
        if (expired or worker_is_dead(job.worker_id)) and not engine_still_stopping(job, no_progress_s):
            reason = "lease expired" if expired else f"worker {job.worker_id} is not running"
            out.append((job.id, handle_lost_job(session, job, reason)))
    session.commit()
    return out


def stop_stale_engine(pid: int | None, *, grace_s: float = 30.0, run_dir: Path | None = None) -> bool:
    """Make sure an engine left by a dead worker on this host has exited before we reuse its run dir.

    The engine gets SIGTERM when its worker dies (parent-death signal) and
    saves a checkpoint; we wait for that, then SIGKILL its process group.
    With ``run_dir`` the wait lasts while the engine shows progress there
    (``heartbeat.json``, events, metrics change) and ends ``grace_s`` after its
    last sign of progress; without it, ``grace_s`` after the SIGTERM.
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
    mark = progress_mark(run_dir) if run_dir else ()
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
        now_mark = progress_mark(run_dir) if run_dir else ()
        if now_mark != mark:
            mark, deadline = now_mark, time.monotonic() + grace_s
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

