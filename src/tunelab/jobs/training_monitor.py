"""The training monitor: one job's status, the studio's summary, recent losses, live step messages.

The workflow guide's "Training API" (``/api/training/*`` and
``/ws/training/{id}``) reads the same store as the rest of the API; this
module shapes it. ``TrainingFeed`` turns the job's event stream (the one
``api/routes/streams.follow`` replays from a cursor) into the guide's per-step
message ``{training: {train_loss, validation_loss, epoch, learning_rate,
grad_norm}, iteration, total, progress, eta_s, resources}``, so the WebSocket
needs no second tailer and resumes exactly like ``/ws/jobs``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tunelab.errors import NotFound
from tunelab.jobs.service import get_job, list_metrics
from tunelab.jobs.states import JobStatus
from tunelab.jobs.usage import training_seconds
from tunelab.store.models import Job, JobEvent, Metric, iso, utcnow

#: How many recently started jobs the average queue wait is taken over.
WAIT_WINDOW = 100


def _total_steps(job: Job) -> int | None:
    total = (job.tail_state or {}).get("total_steps")
    return int(total) if isinstance(total, int | float) else None


def _latest(session: Session, job_id: str) -> tuple[Metric | None, float | None]:
    """The newest metric row with a training loss, and the newest validation loss."""
    rows = list(session.scalars(select(Metric).where(Metric.job_id == job_id).order_by(Metric.step.desc()).limit(200)))
    train = next((row for row in rows if row.loss is not None), None)
    validation = next((row.eval_loss for row in rows if row.eval_loss is not None), None)
    return train, validation


def _tuned_eval_loss(session: Session, job_id: str) -> float | None:
    """The eval loss of the engine's latest non-base ``eval`` event (the end-of-run measurement)."""
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "event").order_by(JobEvent.id.desc())
    for event in session.scalars(query.limit(500)):
        data = event.data or {}
        detail = data.get("data") or {}
        if data.get("type") == "eval" and detail.get("model") != "base" and isinstance(detail.get("eval_loss"), int | float):
            return float(detail["eval_loss"])
    return None


def queued_at(session: Session, job_id: str) -> datetime | None:
    """When the job was first queued (its first ``queued`` status event)."""
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "status").order_by(JobEvent.id)
    for event in session.scalars(query):
        if (event.data or {}).get("status") == JobStatus.QUEUED.value:
            return event.created_at
    return None


def queue_wait_s(session: Session, job: Job) -> float | None:
    """Seconds from first queued to first running (or to now while it still waits)."""
    start = queued_at(session, job.id)
    if start is None:
        return None
    end = job.started_at or (utcnow() if job.status == JobStatus.QUEUED else None)
    return None if end is None else round(max(0.0, (end - start).total_seconds()), 3)


def training_status(session: Session, job_id: str) -> dict[str, Any]:
    """One job now: status, step of total, progress, the latest losses and rates, timing."""
    job = get_job(session, job_id)
    train, validation = _latest(session, job.id)
    if validation is None:
        validation = _tuned_eval_loss(session, job.id)
    data = (train.data if train is not None else None) or {}
    return {
        "job_id": job.id,
        "jobUid": job.id,
        "name": job.name,
        "status": job.status,
        "progress": job.progress if job.progress is not None else 0.0,
        "iteration": job.global_step or 0,
        "total": _total_steps(job),
        "epoch": train.epoch if train is not None else None,
        "train_loss": train.loss if train is not None else None,
        "validation_loss": validation,
        "learning_rate": train.learning_rate if train is not None else None,
        "grad_norm": train.grad_norm if train is not None else None,
        "tokens_per_second": train.tokens_per_second if train is not None else None,
        "samples_per_second": data.get("samples_per_second"),
        "eta_s": train.eta_s if train is not None and job.status == JobStatus.RUNNING else None,
        "elapsed_s": training_seconds(job),
        "queue_wait_s": queue_wait_s(session, job),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "error": job.error,
    }


def training_summary(session: Session) -> dict[str, Any]:
    """Counts by state, the running jobs with progress and throughput, and the queue's wait times."""
    counts = {status.value: 0 for status in JobStatus}
    for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status)):
        counts[status] = int(count)
    running = [
        training_status(session, job.id)
        for job in session.scalars(select(Job).where(Job.status == JobStatus.RUNNING).order_by(Job.started_at))
    ]
    keys = ("job_id", "name", "progress", "iteration", "total", "epoch", "train_loss", "tokens_per_second",
            "samples_per_second", "eta_s", "elapsed_s")  # fmt: skip
    waiting = list(session.scalars(select(Job).where(Job.status == JobStatus.QUEUED)))
    waits_now = [w for w in (queue_wait_s(session, job) for job in waiting) if w is not None]
    started = session.scalars(
        select(Job).where(Job.started_at.is_not(None)).order_by(Job.started_at.desc()).limit(WAIT_WINDOW)
    )
    waits = [w for w in (queue_wait_s(session, job) for job in started) if w is not None]
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "running": [{key: item[key] for key in keys} for item in running],
        "queue": {
            "waiting": len(waiting),
            "oldest_wait_s": max(waits_now) if waits_now else None,
            "average_wait_s": round(sum(waits) / len(waits), 3) if waits else None,
            "sampled_jobs": len(waits),
        },
    }


def default_job(session: Session) -> Job:
    """The job the monitor shows when none is named: the running one started last, else the latest started."""
    query = select(Job).where(Job.started_at.is_not(None))
    running = session.scalars(query.where(Job.status == JobStatus.RUNNING).order_by(Job.started_at.desc())).first()
    job = running or session.scalars(query.order_by(Job.started_at.desc())).first()
    if job is None:
        raise NotFound("no job has started training yet", "create a job (POST /api/jobs), or pass job_id")
    return job


def training_losses(session: Session, job_id: str | None = None, last_n: int | None = None) -> dict[str, Any]:
    """The latest ``last_n`` logged steps of a job (the running one by default) as loss points."""
    job = get_job(session, job_id) if job_id else default_job(session)
    rows = list_metrics(session, job.id, last_n=last_n)
    points = [
        {"step": row.step, "epoch": row.epoch, "train_loss": row.loss, "validation_loss": row.eval_loss,
         "learning_rate": row.learning_rate, "grad_norm": row.grad_norm}
        for row in rows
    ]  # fmt: skip
    return {
        "job_id": job.id,
        "status": job.status,
        "data": points,
        "count": len(points),
        "train_losses": [p["train_loss"] for p in points if p["train_loss"] is not None],
        "validation_losses": [p["validation_loss"] for p in points if p["validation_loss"] is not None],
    }


class TrainingFeed:
    """Turns one job's stored events into the guide's WebSocket messages, in cursor order.

    It keeps what a step message needs that the step's own line lacks: the
    total number of steps (the engine's ``started`` event), the latest
    validation loss (eval lines come separately) and the latest resource
    sample. Give it the job's events from the start (``seed``) before the
    cursor, so a reconnecting client's first message is as complete as the
    one it missed.
    """

    def __init__(self, job: Job) -> None:
        self.job_id = job.id
        self.total: int | None = _total_steps(job)
        self.validation_loss: float | None = None
        self.resources: dict[str, Any] = {}

    def seed(self, session: Session, before: int) -> None:
        """Catch up on state from events up to ``before`` without emitting messages."""
        query = select(JobEvent).where(JobEvent.job_id == self.job_id, JobEvent.id <= before)
        for event in session.scalars(query.where(JobEvent.type.in_(("event", "metrics", "resources")))):
            self.message(event.to_dict())

    def message(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The message for one stream event (``None`` for events the monitor does not show)."""
        kind, data = event.get("type"), event.get("data") or {}
        if kind == "end":
            return {"type": "end", "job_id": event["job_id"], "status": event["status"], "id": event["id"]}
        if kind == "status":
            return {"type": "status", "id": event["id"], "job_id": self.job_id, "status": data.get("status"),
                    "previous": data.get("previous"), "error": data.get("error")}  # fmt: skip
        if kind == "resources":
            self.resources = dict(data)
            return None
        if kind == "event":
            detail = data.get("data") or {}
            if data.get("type") == "started" and isinstance(detail.get("total_steps"), int):
                self.total = detail["total_steps"]
            if data.get("type") == "eval" and isinstance(detail.get("eval_loss"), int | float) \
                    and detail.get("model") != "base":
                # the end-of-run measurement (or a periodic eval): the validation loss of the tuned model
                self.validation_loss = float(detail["eval_loss"])
                return {"type": "evaluation", "id": event["id"], "job_id": self.job_id,
                        "validation_loss": self.validation_loss, "iteration": detail.get("step"),
                        "perplexity": detail.get("perplexity")}  # fmt: skip
            return None
        if kind != "metrics":
            return None
        if isinstance(data.get("eval_loss"), int | float):
            self.validation_loss = float(data["eval_loss"])
        loss = data.get("loss", data.get("train_loss"))
        if not isinstance(loss, int | float):
            return None  # an eval-only line: its loss rides on the next step's message
        step = int(data.get("step", 0))
        progress = round(min(1.0, step / self.total), 4) if self.total else None
        return {
            "type": "training",
            "id": event["id"],
            "job_id": self.job_id,
            "training": {
                "train_loss": float(loss),
                "validation_loss": self.validation_loss,
                "epoch": data.get("epoch"),
                "learning_rate": data.get("learning_rate", data.get("lr")),
                "grad_norm": data.get("grad_norm"),
            },
            "iteration": step,
            "total": self.total,
            "progress": progress,
            "eta_s": data.get("eta_s"),
            "tokens_per_second": data.get("tokens_per_second"),
            "resources": self.resources,
        }
