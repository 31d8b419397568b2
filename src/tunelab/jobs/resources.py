"""Workers that advertise resources, and which worker may run which job.

A worker detects what it has (``detect_resources``: GPUs with name and memory
through ``torch.cuda``, Apple MPS, CPU count, RAM) and keeps a row in the
``workers`` table, renewed with its heartbeat (``advertise``). A job states
what it needs in ``resources`` (``{device, gpus, memory_gb}``, checked by
``jobs.trainconfig.check_resources``) or, without it, through
``hyperparameters.device: cuda`` (one GPU).

The rule "this worker can run this job" is written once, as SQL
(``fits``): the claim (``jobs.queue.claim_next_job``) applies it with the
claiming worker's own values, inside the same ``FOR UPDATE SKIP LOCKED``
query; ``report_waiting`` applies it against every live worker's row, so a
queued job no live worker can run gets a ``wait_reason`` and a
``waiting_for_resources`` event ("needs 1 GPU, workers have none") instead of
waiting silently. ``memory_gb`` is compared with the GPUs' memory together
for GPU jobs and with RAM for the others.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, not_, or_, select
from sqlalchemy.orm import Session

from tunelab.jobs.events import add_event
from tunelab.jobs.states import JobStatus
from tunelab.store.models import Job, WorkerRecord, utcnow

log = logging.getLogger("tunelab.worker")
GIB = 1024**3
#: Queued jobs looked at per report pass (oldest first); the rest are looked at once these move.
REPORT_LIMIT = 500


@dataclass(frozen=True)
class Resources:
    """What one worker can give a job."""

    gpus: list[dict[str, Any]] = field(default_factory=list)  # [{index, name, memory_total}]
    cpu_count: int = 1
    ram_total: int = 0
    mps: bool = False

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    @property
    def gpu_memory_total(self) -> int:
        return sum(int(gpu.get("memory_total") or 0) for gpu in self.gpus)

    def describe(self) -> str:
        """``2 GPUs (NVIDIA A100, 80 GB each), 16 CPUs, 125.7 GB RAM``."""
        parts = []
        if self.gpus:
            names = sorted(
                {
                    f"{gpu.get('name')}, {int(gpu.get('memory_total') or 0) / GIB:.0f} GB"
                    for gpu in self.gpus
                }
            )
            parts.append(
                f"{self.gpu_count} GPU{'s' if self.gpu_count > 1 else ''} ({'; '.join(names)})"
            )
        if self.mps:
            parts.append("Apple MPS")
        parts.append(f"{self.cpu_count} CPUs, {self.ram_total / GIB:.1f} GB RAM")
        return ", ".join(parts)


def detect_resources() -> Resources:
    """This machine's GPUs (``torch.cuda``), MPS, CPUs (the ones this process may use) and RAM."""
    import psutil

    gpus: list[dict[str, Any]] = []
    mps = False
    try:
        import torch

        if torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(index)
                gpus.append(
                    {"index": index, "name": props.name, "memory_total": int(props.total_memory)}
                )
        backend = getattr(torch.backends, "mps", None)
        mps = bool(backend is not None and backend.is_available())
    except Exception as error:  # a broken driver: advertise no GPU rather than no worker
        log.warning("could not read the GPUs through torch: %s", error)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return Resources(
        gpus=gpus, cpu_count=cpus, ram_total=int(psutil.virtual_memory().total), mps=mps
    )


# -- what a job needs, as SQL over the job row ------------------------------------------------
def _wanted_device() -> ColumnElement[Any]:
    return Job.save_options[("resources", "device")].as_string()


def need_gpus() -> ColumnElement[Any]:
    """CUDA GPUs the job needs: ``resources.gpus`` (MPS jobs: none), else for ``device: cuda`` one per
    process of ``distributed.nproc_per_node`` (one without a ``distributed`` block)."""
    hyper = Job.config[("hyperparameters", "device")].as_string()
    stated = Job.save_options[("resources", "gpus")].as_integer()
    processes = Job.config[("hyperparameters", "distributed", "nproc_per_node")].as_integer()
    implied = case((hyper == "cuda", func.coalesce(processes, 1)), else_=0)
    return case((_wanted_device() == "mps", 0), else_=func.coalesce(stated, implied))


def need_mps() -> ColumnElement[Any]:
    hyper = Job.config[("hyperparameters", "device")].as_string()
    return or_(_wanted_device() == "mps", hyper == "mps")


def need_memory_gb() -> ColumnElement[Any]:
    return Job.save_options[("resources", "memory_gb")].as_float()


def fits(gpu_count: Any, gpu_memory_total: Any, ram_total: Any, mps: Any) -> ColumnElement[bool]:
    """The one rule: a worker with these values (SQL expressions or plain values) can run the job row.

    A job on a remote provider (``jobs.provider`` not ``local``) trains there:
    any worker can follow it, whatever its own devices.
    """
    gpus = need_gpus()
    memory = need_memory_gb()
    memory_ok = case((gpus > 0, memory * GIB <= gpu_memory_total), else_=memory * GIB <= ram_total)
    return or_(Job.provider != "local", and_(
        gpus <= gpu_count,
        or_(not_(func.coalesce(need_mps(), False)), literal(mps) if isinstance(mps, bool) else mps),
        or_(memory.is_(None), memory_ok),
    ))  # fmt: skip


def fits_worker(resources: Resources) -> ColumnElement[bool]:
    """``fits`` with one worker's own values: the claim's WHERE clause."""
    return fits(resources.gpu_count, resources.gpu_memory_total, resources.ram_total, resources.mps)


# -- the workers table -------------------------------------------------------------------------
def advertise(
    session: Session, worker_id: str, resources: Resources, current_job: str | None
) -> None:
    """Insert or renew this worker's row (resources, heartbeat, current job); commits."""
    now = utcnow()
    row = session.get(WorkerRecord, worker_id)
    if row is None:
        row = WorkerRecord(id=worker_id, started_at=now)
        session.add(row)
    row.host, row.pid = socket.gethostname(), os.getpid()
    row.gpus, row.gpu_count, row.gpu_memory_total = (
        list(resources.gpus),
        resources.gpu_count,
        resources.gpu_memory_total,
    )
    row.cpu_count, row.ram_total, row.mps = resources.cpu_count, resources.ram_total, resources.mps
    row.current_job_id, row.heartbeat_at, row.stopped_at = current_job, now, None
    session.commit()


def retire(session: Session, worker_id: str) -> None:
    """Mark this worker's row stopped (it exited cleanly); commits."""
    row = session.get(WorkerRecord, worker_id)
    if row is not None:
        row.stopped_at, row.current_job_id = utcnow(), None
        session.commit()


def live_clause(stale_s: float) -> ColumnElement[bool]:
    return and_(
        WorkerRecord.stopped_at.is_(None),
        WorkerRecord.heartbeat_at >= utcnow() - timedelta(seconds=stale_s),
    )


def list_workers(session: Session, stale_s: float) -> list[dict[str, Any]]:
    """Every known worker, newest heartbeat first, with ``alive`` and the jobs it runs (with their leases)."""
    rows = session.scalars(
        select(WorkerRecord).order_by(WorkerRecord.heartbeat_at.desc(), WorkerRecord.id)
    ).all()
    running = session.execute(
        select(Job.id, Job.name, Job.worker_id, Job.lease_expires_at, Job.global_step)
        .where(Job.status == JobStatus.RUNNING.value, Job.worker_id.is_not(None))
        .order_by(Job.id)
    ).all()
    cutoff = utcnow() - timedelta(seconds=stale_s)
    out = []
    for row in rows:
        data = row.to_dict()
        data["alive"] = row.stopped_at is None and row.heartbeat_at >= cutoff
        data["resources"] = Resources(
            row.gpus or [], row.cpu_count, row.ram_total, row.mps
        ).describe()
        data["jobs"] = [
            {"id": job_id, "name": name, "step": step,
             "lease_expires_at": lease.isoformat().replace("+00:00", "Z") if lease else None}
            for job_id, name, worker_id, lease, step in running if worker_id == row.id
        ]  # fmt: skip
        out.append(data)
    return out


# -- jobs nobody can run -----------------------------------------------------------------------
def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _reason(gpus: int, mps: bool, memory: float | None, workers: list[WorkerRecord]) -> str:
    """``waiting for resources: needs 1 GPU, workers have none``."""
    wants, haves = [], []
    most_gpus = max((w.gpu_count for w in workers), default=0)
    if gpus:
        wants.append(_plural(gpus, "GPU"))
        haves.append(f"at most {_plural(most_gpus, 'GPU')}" if most_gpus else "none")
    if mps:
        wants.append("Apple MPS")
        if not any(w.mps for w in workers):
            haves.append("no MPS")
    if memory is not None:
        pool = (
            [w.gpu_memory_total for w in workers if w.gpu_count >= gpus]
            if gpus
            else [w.ram_total for w in workers]
        )
        wants.append(f"{memory:g} GB of {'GPU memory' if gpus else 'RAM'}")
        haves.append(f"at most {max(pool, default=0) / GIB:.1f} GB")
    return f"waiting for resources: needs {', '.join(wants)}; workers have {', '.join(haves) or 'less'}"


def report_waiting(session: Session, stale_s: float) -> list[tuple[str, str | None]]:
    """Set or clear ``wait_reason`` of queued jobs against the live workers; returns (job id, reason) changed.

    Run by every worker on its reconcile pass (the worker is the writer of job
    state); a new reason also becomes a ``waiting_for_resources`` event. With
    no live worker at all nothing is said: the job waits for a worker, not for
    resources. Commits.
    """
    workers = list(session.scalars(select(WorkerRecord).where(live_clause(stale_s))))
    if not workers:
        return []
    fitting = exists().where(
        live_clause(stale_s),
        fits(
            WorkerRecord.gpu_count,
            WorkerRecord.gpu_memory_total,
            WorkerRecord.ram_total,
            WorkerRecord.mps,
        ),
    )
    query = (
        select(Job, not_(fitting), need_gpus(), func.coalesce(need_mps(), False), need_memory_gb())
        .where(Job.status == JobStatus.QUEUED.value)
        .order_by(Job.priority, Job.created_at, Job.id)
        .limit(REPORT_LIMIT)
        .with_for_update(of=Job, skip_locked=True)
    )
    changed: list[tuple[str, str | None]] = []
    for job, stuck, gpus, mps, memory in session.execute(query).all():
        reason = _reason(int(gpus or 0), bool(mps), memory, workers) if stuck else None
        if reason == job.wait_reason:
            continue
        job.wait_reason = reason
        changed.append((job.id, reason))
        if reason:
            add_event(session, job.id, "event", {
                "time": time.time(), "type": "waiting_for_resources", "message": reason,
                "data": {"gpus": int(gpus or 0), "mps": bool(mps), "memory_gb": memory,
                         "live_workers": len(workers)},
            })  # fmt: skip
    session.commit()
    return changed
