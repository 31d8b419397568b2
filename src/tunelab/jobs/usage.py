"""What a job cost: final loss, training time, GPU hours and money, from what the store holds.

``POST /api/jobs/compare`` ranks jobs by these beside their logged metrics,
and the training monitor shows them. Every figure comes from rows the worker
wrote: the metrics (loss), the run seconds the supervisor keeps in
``tail_state`` (engine wall clock over every attempt, so a paused and resumed
job counts only the time it trained), the engine's ``started`` event (the
device it chose) and the job's stated ``resources`` (its GPU count). The price
per hour is a setting (``TUNELAB_PRICE_PER_GPU_HOUR``,
``TUNELAB_PRICE_PER_CPU_HOUR``), 0 by default. For a completed job none of
them is null: a job trained on a CPU used 0 GPU hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.settings import Settings, get_settings
from tunelab.store.models import Job, JobEvent, Metric, utcnow

#: The totals and their units, in the order the guide names them (plus cost).
TOTALS: dict[str, str] = {"final_loss": "loss", "training_time": "s", "gpu_hours": "h", "cost": "price"}


def training_seconds(job: Job) -> float | None:
    """Seconds the engine ran: the supervisor's count, else started-to-finished (or to now)."""
    ran = (job.tail_state or {}).get("run_seconds")
    if isinstance(ran, int | float) and ran > 0:
        return float(ran)
    if job.started_at is None:
        return None
    end = job.finished_at or utcnow()
    return max(0.0, (end - job.started_at).total_seconds())


def engine_device(session: Session, job_id: str) -> str | None:
    """The device the engine trained on, from its latest ``started`` event."""
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "event")
    for event in session.scalars(query.order_by(JobEvent.id.desc())):
        data = event.data or {}
        if data.get("type") == "started":
            hardware = (data.get("data") or {}).get("hardware") or {}
            device = hardware.get("device")
            return str(device) if device else None
    return None


def gpus_used(session: Session, job: Job) -> int:
    """GPUs the job trained on: its stated count on a CUDA device (1 if it stated none), else 0."""
    device = engine_device(session, job.id) or ""
    if not device.startswith("cuda"):
        return 0
    stated = ((job.save_options or {}).get("resources") or {}).get("gpus")
    return int(stated) if isinstance(stated, int) and stated > 0 else 1


def final_loss(session: Session, job: Job, rows: Sequence[Metric] | None = None) -> float | None:
    """The last logged training loss, else the engine's summary ``final_loss``."""
    if rows is None:
        rows = list(session.scalars(select(Metric).where(Metric.job_id == job.id).order_by(Metric.step)))
    for row in reversed(rows):
        if row.loss is not None:
            return float(row.loss)
    query = select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.type == "event")
    for event in session.scalars(query.order_by(JobEvent.id.desc())):
        data = event.data or {}
        value = (data.get("data") or {}).get("final_loss")
        if data.get("type") == "completed" and isinstance(value, int | float):
            return float(value)
    return None


def job_usage(
    session: Session, job: Job, rows: Sequence[Metric] | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """``{final_loss, training_time, gpu_hours, cost}`` for one job (None only before it trained)."""
    settings = settings or get_settings()
    seconds = training_seconds(job)
    if seconds is None:
        return {"final_loss": final_loss(session, job, rows), "training_time": None, "gpu_hours": None,
                "cost": None}  # fmt: skip
    gpus = gpus_used(session, job)
    hours = seconds / 3600
    gpu_hours = hours * gpus
    cost = gpu_hours * settings.price_per_gpu_hour + (0.0 if gpus else hours * settings.price_per_cpu_hour)
    return {
        "final_loss": final_loss(session, job, rows),
        "training_time": round(seconds, 3),
        "gpu_hours": round(gpu_hours, 6),
        "cost": round(cost, 6),
    }
