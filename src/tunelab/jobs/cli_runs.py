"""`tunelab train` runs recorded in the studio's store, as jobs with source ``cli``.

A run trained in the terminal is as real as one the studio queued, so when a
tunelab home exists the CLI records it there once it ends: the job row (its
configuration, status, error), every metric and event from the run directory
(through the same ``tailer.ingest`` the worker uses, so it appears in the
dashboard and in compare), its output files as artifacts and, when it
completed, its tuned model in the collection. The run keeps living in its own
folder; the job points at it with ``run_dir``.

Recording happens at the end, never while training, because a ``running`` job
without a worker's lease would look lost to the studio's reconciler, which
would then queue it for a worker to train a second time. A stopped run is
recorded ``paused``; running the same command with ``--run-dir`` again updates
the same job (``paused -> queued -> running -> ...``, each a legal move). The
studio cannot resume it (the checkpoint lives in the terminal's folder), so
``jobs.service.resume_job`` answers with the command that does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.jobs.events import add_event, set_status
from tunelab.jobs.outcome import Outcome, finish
from tunelab.jobs.service import new_job_id
from tunelab.jobs.states import JobStatus
from tunelab.jobs.tailer import ingest
from tunelab.settings import Settings
from tunelab.store.models import Job

SOURCE = "cli"

#: The engine's result status -> the job's status.
_STATUSES = {"completed": JobStatus.COMPLETED, "failed": JobStatus.FAILED, "stopped": JobStatus.PAUSED}


def should_record(settings: Settings) -> bool:
    """Record only into a studio that exists: a home folder, or a database URL set on purpose."""
    return bool(settings.database_url) or Path(settings.home).expanduser().is_dir()


def job_config(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved TrainConfig (as JSON) -> the studio's ``{model, dataset, hyperparameters}``."""
    hyperparameters = {k: v for k, v in config.items() if k not in ("name", "model", "dataset")}
    return {"model": config.get("model"), "dataset": config.get("dataset"), "hyperparameters": hyperparameters}


def record_run(
    settings: Settings,
    config: dict[str, Any],
    run_dir: Path,
    status: str,
    *,
    error: dict[str, Any] | None = None,
    resume_command: str = "",
) -> Job:
    """Record (or update) the job of the CLI run in ``run_dir`` that ended with ``status``.

    ``config`` is the resolved TrainConfig as JSON; ``status`` is the engine's
    ``completed``, ``failed`` or ``stopped``. Returns the job.
    """
    from tunelab.store.db import session_factory

    run_dir = Path(run_dir).resolve()
    target = _STATUSES.get(status, JobStatus.FAILED)
    with session_factory(settings.resolved_database_url, role="worker", settings=settings)() as session:
        job = _job_for(session, config, run_dir)
        if job.status in (JobStatus.CREATED.value, JobStatus.PAUSED.value):  # paused: the same command again
            set_status(session, job, JobStatus.QUEUED, reason="tunelab train started the run")
        if job.status == JobStatus.QUEUED.value:
            set_status(session, job, JobStatus.RUNNING, worker="tunelab train")
            job.attempts += 1  # one per `tunelab train` invocation of this run
            job.max_attempts = max(job.max_attempts, job.attempts)
        job.save_options = {**(job.save_options or {}), "resume_command": resume_command}
        ingest(session, job, run_dir)
        outcome_error = None if target != JobStatus.FAILED else (error or {"code": "training_failed"})
        finish(session, job, Outcome(target, error=outcome_error), run_dir)
        job.started_at = _started_at(run_dir) or job.started_at
        session.commit()
        return job


def _job_for(session: Session, config: dict[str, Any], run_dir: Path) -> Job:
    """The CLI job already recorded for ``run_dir`` (a resumed run), else a new one."""
    query = select(Job).where(Job.source == SOURCE, Job.run_dir == str(run_dir)).order_by(Job.created_at.desc())
    job = session.scalars(query).first()
    if job is not None and not JobStatus(job.status).is_terminal():
        return job
    job = Job(id=new_job_id(), name=str(config.get("name") or run_dir.name), source=SOURCE,
              tags=[SOURCE], config=job_config(config), status=JobStatus.CREATED.value,
              run_dir=str(run_dir), max_attempts=1)  # fmt: skip
    session.add(job)
    session.flush()
    add_event(session, job.id, "status", {"status": "created", "previous": None, "source": SOURCE})
    return job


def _started_at(run_dir: Path) -> datetime | None:
    """When the engine started (its first event's time), so the job shows the real training time."""
    try:
        with (run_dir / "events.jsonl").open(encoding="utf-8") as fh:
            first = json.loads(fh.readline() or "{}")
    except (OSError, ValueError):
        return None
    when = first.get("time") if isinstance(first, dict) else None
    return datetime.fromtimestamp(when, UTC) if isinstance(when, int | float) else None
