"""Studio analytics over the job store: throughput, success, queue wait, compute hours, popular choices.

The guide's "Dashboard Analytics": jobs per day, success rate, resource
utilisation (CPU and GPU hours), queue wait times, popular models and
datasets, and common hyperparameter choices. One pass over the jobs created
in the window (``days``), computed in Python so it reads the same on SQLite
and PostgreSQL and needs no JSON operators.

Definitions (documented in docs/monitoring.md):

- success rate: completed / (completed + failed), in percent, over jobs that
  ended; cancelled jobs are a user's choice and are counted apart;
- queue wait: from a job's first ``queued`` status event to its first start
  (``started_at``), for jobs that started;
- compute hours: each job's training time times the GPUs it used, both as
  ``jobs/usage.py`` (the home of a job's cost, also behind
  ``POST /api/jobs/compare``) defines them; a job that used no GPU counts as
  CPU hours.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.errors import InvalidInput
from tunelab.jobs.usage import gpus_used, training_seconds
from tunelab.store.models import Job, JobEvent, iso, utcnow

TOP = 10


def _label(value: Any) -> str | None:
    """A model or dataset as written in the job: a string, or the guide's ``{uid, name}`` object."""
    if isinstance(value, dict):
        value = value.get("name") or value.get("uid") or value.get("id")
    return None if value in (None, "") else str(value)


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "mean_s": None, "median_s": None, "p95_s": None, "max_s": None}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "mean_s": round(statistics.fmean(ordered), 3),
        "median_s": round(statistics.median(ordered), 3),
        "p95_s": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 3),
        "max_s": round(ordered[-1], 3),
    }


def _queued_at(session: Session, job_ids: list[str]) -> dict[str, datetime]:
    """Each job's first ``queued`` status event time."""
    queued: dict[str, datetime] = {}
    for start in range(0, len(job_ids), 500):
        chunk = job_ids[start : start + 500]
        rows = session.execute(
            select(JobEvent.job_id, JobEvent.created_at, JobEvent.data)
            .where(JobEvent.job_id.in_(chunk), JobEvent.type == "status")
            .order_by(JobEvent.id)
        )
        for job_id, created_at, data in rows:
            if (data or {}).get("status") == "queued":
                queued.setdefault(job_id, created_at)
    return queued


def _flatten(hyper: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """TrainConfig's nested groups as dotted names (``lora.r``), as the stored job config holds them."""
    out: list[tuple[str, Any]] = []
    for key, value in hyper.items():
        if key == "uid":
            continue
        if isinstance(value, dict):
            out.extend(_flatten(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _value_key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def analytics(session: Session, days: int = 30) -> dict[str, Any]:
    """Everything the analytics page shows, over the jobs created in the last ``days`` days."""
    if not 1 <= days <= 3650:
        raise InvalidInput(f"days={days} is out of range", hint="use 1 to 3650")
    now = utcnow()
    first_day = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first_day, datetime.min.time(), tzinfo=now.tzinfo)
    jobs = list(session.scalars(select(Job).where(Job.created_at >= since).order_by(Job.created_at)))
    queued_at = _queued_at(session, [job.id for job in jobs])

    per_day: dict[str, dict[str, int]] = {
        (first_day + timedelta(days=i)).isoformat(): {"created": 0, "completed": 0, "failed": 0, "cancelled": 0}
        for i in range(days)
    }
    statuses: Counter[str] = Counter()
    models: Counter[str] = Counter()
    datasets: Counter[str] = Counter()
    model_done: Counter[str] = Counter()
    dataset_done: Counter[str] = Counter()
    hyper: dict[str, Counter[str]] = {}
    waits: list[float] = []
    cpu_s = gpu_s = 0.0
    for job in jobs:
        statuses[job.status] += 1
        day = per_day.get(job.created_at.date().isoformat())
        if day is not None:
            day["created"] += 1
        if job.finished_at is not None and job.status in ("completed", "failed", "cancelled"):
            ended = per_day.get(job.finished_at.date().isoformat())
            if ended is not None:
                ended[job.status] += 1
        config = job.config or {}
        model, dataset = _label(config.get("model")), _label(config.get("dataset"))
        if model:
            models[model] += 1
            model_done[model] += job.status == "completed"
        if dataset:
            datasets[dataset] += 1
            dataset_done[dataset] += job.status == "completed"
        for key, value in _flatten(config.get("hyperparameters") or {}):
            hyper.setdefault(key, Counter())[_value_key(value)] += 1
        if job.started_at is not None and job.id in queued_at:
            waits.append(max(0.0, (job.started_at - queued_at[job.id]).total_seconds()))
        seconds = training_seconds(job)
        if seconds is not None:
            gpus = gpus_used(session, job)
            if gpus:
                gpu_s += seconds * gpus
            else:
                cpu_s += seconds

    completed, failed = statuses["completed"], statuses["failed"]
    ended = completed + failed
    return {
        "days": days,
        "since": iso(since),
        "generated_at": iso(now),
        "totals": {
            "jobs": len(jobs),
            "by_status": dict(sorted(statuses.items())),
            "completed": completed,
            "failed": failed,
            "cancelled": statuses["cancelled"],
            "ended": ended,
        },
        "success_rate": round(100.0 * completed / ended, 2) if ended else None,
        "jobs_per_day": [{"date": date, **counts} for date, counts in per_day.items()],
        "queue_wait": _summary(waits),
        "compute": {
            "cpu_hours": round(cpu_s / 3600.0, 6),
            "gpu_hours": round(gpu_s / 3600.0, 6),
            "total_hours": round((cpu_s + gpu_s) / 3600.0, 6),
        },
        "popular_models": [
            {"model": name, "jobs": count, "completed": model_done[name]} for name, count in models.most_common(TOP)
        ],
        "popular_datasets": [
            {"dataset": name, "jobs": count, "completed": dataset_done[name]}
            for name, count in datasets.most_common(TOP)
        ],
        "hyperparameters": [
            {
                "name": key,
                "jobs": sum(counter.values()),
                "values": [{"value": value, "count": count} for value, count in counter.most_common(5)],
            }
            for key, counter in sorted(hyper.items(), key=lambda item: (-sum(item[1].values()), item[0]))
        ],
    }
