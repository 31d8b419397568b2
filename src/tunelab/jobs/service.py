"""Job service functions: the only way the API, CLI and dashboard touch jobs.

Each function takes a SQLAlchemy ``Session`` explicitly and returns ORM rows
(``row.to_dict()`` gives the JSON shape). Functions that change something
commit before they return, so a thin caller cannot forget to. Unknown ids raise
``NotFound`` (404); illegal status changes raise ``IllegalTransition`` (409)
listing the allowed ones; bad input raises ``InvalidInput``/``ConfigError`` (422).

Pause and cancel of a *running* job are requests: they set
``requested_action`` and the worker that owns the engine process carries them
out (pause: checkpoint then ``paused``; cancel: SIGTERM, grace, SIGKILL, then
``cancelled``). For jobs not running they take effect at once.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tunelab.errors import Conflict, InvalidInput, NotFound
from tunelab.export.hub import hub_target
from tunelab.jobs.events import add_event, list_events, set_status
from tunelab.jobs.names import check_name, check_tags, check_text
from tunelab.jobs.paths import ADMITTED, LOCAL, PathAccess
from tunelab.jobs.states import JobStatus, check_action, check_transition, parse_priority
from tunelab.settings import Settings, get_settings
from tunelab.store.db import begin_write
from tunelab.store.models import Artifact, Checkpoint, Job, JobEvent, Metric

__all__ = [
    "add_event",
    "cancel_job",
    "checkpoint_job",
    "compare_jobs",
    "create_job",
    "delete_job",
    "get_artifact",
    "get_job",
    "list_artifacts",
    "list_checkpoints",
    "list_events",
    "list_jobs",
    "list_metrics",
    "pause_job",
    "resume_job",
    "retry_job",
    "set_learning_rate",
    "stop_early_job",
    "trained_tokens",
]

MAX_PAGE = 1000


def new_job_id() -> str:
    return f"job-{uuid.uuid4().hex[:12]}"


def create_job(
    session: Session,
    config: dict[str, Any],
    *,
    name: str = "",
    description: str = "",
    tags: Sequence[str] = (),
    save_options: dict[str, Any] | None = None,
    priority: str | int = "medium",
    timeout_s: float | None = None,
    max_attempts: int = 3,
    submit: bool = True,
    retry_of: str | None = None,
    configuration_id: str | None = None,
    paths: PathAccess = LOCAL,
    provider: str = "local",
    settings: Settings | None = None,
) -> Job:
    """Create a job from ``{model, dataset, hyperparameters}`` and (by default) queue it.

    The configuration is validated now (``ConfigError`` 422 naming every bad
    field) by building the engine's TrainConfig, so a bad job never reaches the
    queue. ``dataset`` is a stored dataset version id, a dataset name, or a path;
    ``paths`` says which server paths the caller may name (``tunelab.jobs.paths``:
    the default ``LOCAL`` is for in-process callers such as the CLI; API routes
    pass ``api_access``), and every admitted path is stored absolute.
    ``save_options`` is ``{save_model, model_name, push_to_hub, public | make_public}``,
    plus the job's ``resources`` needs (checked by ``trainconfig.check_resources``).
    ``configuration_id`` is the saved configuration the job was made from.
    ``provider`` is where it trains: ``local`` (this studio's engine) or a
    provider named in ``settings`` (the caller's, else the process's; ``tunelab.providers.registry``).
    """
    from tunelab.jobs.trainconfig import check_resources, validate_job_config
    from tunelab.providers.registry import check_provider, check_remote_config

    check_name(name, "name")  # a label, never a path: run folders are named from the job id
    check_text(description, "description")
    tags = check_tags(list(tags or ()), "tags")
    provider = check_provider(provider, settings or get_settings())
    config = validate_job_config(session, config, paths)
    check_remote_config(provider, config)
    save_options = dict(save_options or {})
    if "resources" in save_options:
        save_options["resources"] = check_resources(save_options["resources"], config)
    if save_options.get("push_to_hub") and save_options.get("save_model") is False:
        raise InvalidInput("pushToHub needs saveModel", "set saveModel true, or pushToHub false")
    hub_target(save_options)  # push_to_hub needs model_name = "user/name" (ConfigError 422)
    if max_attempts < 1 or max_attempts > 100:
        raise InvalidInput("max_attempts must be between 1 and 100", "pass e.g. max_attempts=3")
    if timeout_s is not None and timeout_s <= 0:
        raise InvalidInput("timeout_s must be positive", "omit it for no timeout")
    job = Job(
        id=new_job_id(),
        name=name or "",
        description=description or "",
        tags=tags,
        config=config,
        save_options=dict(save_options or {}),
        priority=parse_priority(priority),
        timeout_s=timeout_s,
        max_attempts=max_attempts,
        status=JobStatus.CREATED.value,
        retry_of=retry_of,
        configuration_id=configuration_id,
        provider=provider,
    )
    session.add(job)
    session.flush()
    add_event(session, job.id, "status", {"status": "created", "previous": None})
    if submit:
        set_status(session, job, JobStatus.QUEUED)
    session.commit()
    return job


def get_job(session: Session, job_id: str) -> Job:
    """The job, or ``NotFound`` (404) with a hint to list jobs."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id!r}", "list jobs with `tunelab jobs list`")
    return job


def _job_for_write(session: Session, job_id: str) -> Job:
    """The job, read in a transaction that holds the write lock (``store.db.begin_write``)."""
    begin_write(session)
    return get_job(session, job_id)


def list_jobs(
    session: Session,
    *,
    status: str | Sequence[str] | None = None,
    tag: str | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """Jobs newest first, filtered by status(es), tag and name substring; returns (page, total).

    Without a tag the page and the total are two SQL queries (LIMIT/OFFSET and
    COUNT), so a studio with thousands of jobs loads only the rows it returns;
    tags are a JSON list, matched in Python over the filtered rows.
    """
    conditions = []
    if status:
        statuses = [status] if isinstance(status, str) else list(status)
        for value in statuses:
            if value not in JobStatus._value2member_map_:
                _bad_status(value)
        conditions.append(Job.status.in_(statuses))
    if search:
        conditions.append(Job.name.contains(search))
    limit = max(1, min(limit, MAX_PAGE))
    ordered = select(Job).where(*conditions).order_by(Job.created_at.desc(), Job.id)
    if not tag:
        total = session.scalar(select(func.count(Job.id)).where(*conditions)) or 0
        return list(session.scalars(ordered.limit(limit).offset(offset))), int(total)
    rows = [job for job in session.scalars(ordered) if tag in (job.tags or [])]
    return rows[offset : offset + limit], len(rows)


def _bad_status(value: str) -> None:
    raise InvalidInput(
        f"unknown status {value!r}", f"use one of: {', '.join(s.value for s in JobStatus)}"
    )


def pause_job(session: Session, job_id: str) -> Job:
    """Ask the worker to checkpoint and stop; the job becomes ``paused`` when the engine exits."""
    job = _job_for_write(session, job_id)
    check_transition(job.id, job.status, JobStatus.PAUSED)  # ACTIONS["pause"]: running only
    if job.requested_action not in (None, "pause"):
        raise Conflict(f"job {job.id} is already being {job.requested_action}led", "wait for it")
    job.requested_action = "pause"
    add_event(session, job.id, "event", {"type": "pause_requested"})
    session.commit()
    return job


def resume_job(session: Session, job_id: str) -> Job:
    """Queue a paused (or never submitted) job; the next run continues from its last checkpoint.

    The state machine also allows ``running -> queued``, but that is the worker
    giving a job back, never a user action: requeueing a running job would let a
    second worker start it while the first still trains.
    """
    job = _job_for_write(session, job_id)
    check_action(job.id, job.status, "resume")
    if job.source == "cli":  # its checkpoint is in the terminal's run folder (jobs/cli_runs.py)
        command = (job.save_options or {}).get("resume_command") or "tunelab train CONFIG --run-dir RUN_DIR"
        raise Conflict(f"job {job.id} was trained by `tunelab train`; the studio cannot resume it",
                       f"continue it where it ran: {command}")
    set_status(session, job, JobStatus.QUEUED)
    job.requested_action = None
    session.commit()
    return job


def cancel_job(session: Session, job_id: str) -> Job:
    """Cancel now (created/queued/paused) or ask the worker to stop the engine (running)."""
    job = _job_for_write(session, job_id)
    if job.status == JobStatus.RUNNING:
        check_transition(job.id, job.status, JobStatus.CANCELLED)
        job.requested_action = "cancel"
        add_event(session, job.id, "event", {"type": "cancel_requested"})
    else:
        set_status(session, job, JobStatus.CANCELLED)
    session.commit()
    return job


#: The event each intervention request is recorded as (the worker relays these to the engine).
INTERVENTION_EVENTS = {
    "checkpoint": "checkpoint_requested",
    "learning_rate": "learning_rate_requested",
    "stop_early": "stop_early_requested",
}


def _intervene(session: Session, job_id: str, action: str, **data: Any) -> tuple[Job, JobEvent]:
    """Record an intervention on a running job; the event's id is the request's id.

    The worker that owns the engine relays it into the run's control file at
    its next tick and the engine applies it at the next step boundary,
    answering with its own event (``checkpoint_saved``, ``learning_rate_changed``,
    ``stopped_early``). Refused once a pause or cancel is on its way: that
    engine is about to stop.
    """
    job = _job_for_write(session, job_id)
    check_action(job.id, job.status, action)
    if job.provider != "local":  # nothing relays these to a remote service (OpenAI's API has no such calls)
        raise Conflict(
            f"job {job.id} trains on provider {job.provider!r}; {action.replace('_', ' ')} reaches only this "
            "studio's own engine",
            "pause or cancel it instead (both are sent to the provider)",
            details={"job_id": job.id, "provider": job.provider},
        )
    if job.requested_action in ("pause", "cancel"):
        raise Conflict(
            f"job {job.id} is already being {job.requested_action}led",
            "wait for it to stop; resume a paused job to train on",
            details={"job_id": job.id, "requested_action": job.requested_action},
        )
    what = f"learning rate {data['value']:g}" if "value" in data else action.replace("_", " ")
    event = add_event(session, job.id, "event", {"type": INTERVENTION_EVENTS[action], "action": action,
                                                 "message": f"{what} requested", **data})
    session.commit()
    return job, event


def checkpoint_job(session: Session, job_id: str) -> tuple[Job, JobEvent]:
    """Ask the engine of a running job to save a checkpoint now and keep training."""
    return _intervene(session, job_id, "checkpoint")


def set_learning_rate(session: Session, job_id: str, learning_rate: float) -> tuple[Job, JobEvent]:
    """Ask a running job's engine to train on at ``learning_rate`` from its next step.

    The range is TrainConfig's (``learning_rate_bounds``), so a rate a job could not
    start with cannot be set on it either (422).
    """
    from tunelab.training.config import learning_rate_bounds

    low, high = learning_rate_bounds()
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float) or not (
        low <= learning_rate <= high
    ):
        raise InvalidInput(
            f"learning_rate must be a number between {low:g} and {high:g}, not {learning_rate!r}",
            "e.g. 1e-4; the same range a job's configuration accepts",
            details={"minimum": low, "maximum": high},
        )
    return _intervene(session, job_id, "learning_rate", value=float(learning_rate))


def stop_early_job(session: Session, job_id: str) -> tuple[Job, JobEvent]:
    """Ask a running job to end now with its current weights: output saved, job ``completed``.

    Unlike cancel (which keeps only checkpoints) the run finishes properly:
    output, evaluation and model card, as if the planned steps had ended here.
    """
    return _intervene(session, job_id, "stop_early")


def intervention_cursor(session: Session, job_id: str) -> int:
    """Where a new engine attempt starts reading requests: its claim (the latest status event).

    Requests from an earlier attempt were for that engine; the claim's ``running``
    status event comes before any request the new attempt should see.
    """
    latest = session.scalar(
        select(func.max(JobEvent.id)).where(JobEvent.job_id == job_id, JobEvent.type == "status")
    )
    return int(latest or 0)


def pending_interventions(session: Session, job_id: str, after: int) -> list[tuple[int, str, float | None]]:
    """Every request recorded after event id ``after`` as (request id, action, value), oldest first.

    The worker asks this every tick from its attempt's cursor and relays the ids it
    has not relayed yet. Reading from the cursor each time (not from the last id
    seen) cannot miss a request whose transaction committed after a later event's,
    which PostgreSQL sequences allow; the filter on the event's type keeps it to a few rows.
    """
    query = (
        select(JobEvent.id, JobEvent.data)
        .where(
            JobEvent.job_id == job_id,
            JobEvent.type == "event",
            JobEvent.id > after,
            JobEvent.data["type"].as_string().in_(list(INTERVENTION_EVENTS.values())),
        )
        .order_by(JobEvent.id)
    )
    return [(event_id, str((data or {}).get("action")), (data or {}).get("value"))
            for event_id, data in session.execute(query)]


def retry_job(session: Session, job_id: str) -> Job:
    """Run a failed or cancelled job's configuration again as a new job (``retry_of`` = old id).

    Terminal jobs never change state (DESIGN.md), so a retry is a fresh job with
    a fresh run directory and its own attempts.
    """
    old = _job_for_write(session, job_id)
    check_action(old.id, old.status, "retry")
    return create_job(
        session,
        old.config,
        name=old.name,
        description=old.description,
        tags=old.tags,
        save_options=old.save_options,
        priority=old.priority,
        timeout_s=old.timeout_s,
        max_attempts=old.max_attempts,
        retry_of=old.id,
        configuration_id=old.configuration_id,
        paths=ADMITTED,  # admitted when the first job was made; its paths are already absolute
        provider=old.provider,
    )


def delete_job(
    session: Session, job_id: str, *, delete_files: bool = True, settings: Settings | None = None
) -> None:
    """Delete a finished job with its events, metrics and (by default) its run directory."""
    job = _job_for_write(session, job_id)
    if not JobStatus(job.status).is_terminal() and job.status != JobStatus.CREATED:
        raise Conflict(
            f"job {job.id} is '{job.status}'; cancel it before deleting",
            f"run `tunelab jobs cancel {job.id}` first",
        )
    run_dir = job.run_dir
    for model in (JobEvent, Metric, Checkpoint, Artifact):
        session.query(model).filter(model.job_id == job.id).delete()
    session.delete(job)
    session.commit()
    settings = settings or get_settings()
    if delete_files and run_dir and Path(run_dir).parent == settings.runs_dir:
        shutil.rmtree(run_dir, ignore_errors=True)


def list_metrics(session: Session, job_id: str, *, last_n: int | None = None) -> list[Metric]:
    """Metric rows by step; ``last_n`` keeps only the latest n steps."""
    get_job(session, job_id)
    query = select(Metric).where(Metric.job_id == job_id)
    if last_n is not None:
        rows = list(session.scalars(query.order_by(Metric.step.desc()).limit(max(0, last_n))))
        return rows[::-1]
    return list(session.scalars(query.order_by(Metric.step)))


def list_checkpoints(session: Session, job_id: str) -> list[Checkpoint]:
    get_job(session, job_id)
    query = select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step)
    return list(session.scalars(query))


def list_artifacts(session: Session, job_id: str) -> list[Artifact]:
    get_job(session, job_id)
    return list(
        session.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.id))
    )


def get_artifact(session: Session, job_id: str, artifact_id: int) -> tuple[Artifact, Path]:
    """The artifact row and its absolute path, checked to lie inside the job's run directory."""
    job = get_job(session, job_id)
    artifact = session.get(Artifact, artifact_id)
    if artifact is None or artifact.job_id != job.id or not job.run_dir:
        raise NotFound(f"job {job_id} has no artifact {artifact_id}", "list its artifacts first")
    root = Path(job.run_dir).resolve()
    path = (root / artifact.path).resolve()
    if not path.is_relative_to(root) or not path.exists():
        raise NotFound(
            f"artifact {artifact_id} of job {job_id} is missing on disk", "re-run the job"
        )
    return artifact, path


def compare_jobs(
    session: Session,
    job_ids: Sequence[str],
    metrics: Sequence[str] = ("loss", "eval_loss"),
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Per job: status, final and best value of each chosen metric, and the curve by step.

    Beside logged metrics, the job totals of ``jobs.usage`` (``final_loss``,
    ``training_time``, ``gpu_hours``, ``cost``) come in the same shape with
    ``final`` = ``best`` = the total and no curve; for a completed job none is null.
    Each job also carries its effective ``hyperparameters`` (dotted names) and
    ``differing`` names those not the same in every job (``jobs.comparison``).
    """
    from tunelab.jobs.comparison import differing, hyperparameters
    from tunelab.jobs.usage import TOTALS, job_usage

    columns = {c.key for c in Metric.__table__.columns} - {"id", "job_id", "data", "created_at"}
    out: dict[str, Any] = {"metrics": list(metrics), "jobs": []}
    for job_id in job_ids:
        job = get_job(session, job_id)
        rows = list_metrics(session, job_id)
        entry: dict[str, Any] = {"id": job.id, "name": job.name, "status": job.status,
                                 "hyperparameters": hyperparameters(job)}  # fmt: skip
        totals = job_usage(session, job, rows, settings) if set(metrics) & set(TOTALS) else {}
        for metric in metrics:
            if metric in TOTALS:
                value = totals[metric]
                entry[metric] = {"final": value, "best": value, "steps": [], "values": [], "unit": TOTALS[metric]}
                continue
            points = [
                (row.step, getattr(row, metric) if metric in columns else row.data.get(metric))
                for row in rows
            ]
            points = [(step, value) for step, value in points if isinstance(value, int | float)]
            entry[metric] = {
                "final": points[-1][1] if points else None,
                "best": min(v for _, v in points) if points else None,
                "steps": [step for step, _ in points],
                "values": [value for _, value in points],
            }
        out["jobs"].append(entry)
    out["differing"] = differing([entry["hyperparameters"] for entry in out["jobs"]])
    return out


def trained_tokens(session: Session, job_id: str) -> int | None:
    """Tokens the engine trained on (real, non-padding, over every step); None before a step ran.

    OpenAI's ``trained_tokens`` reads this. The engine's ``completed`` event
    carries its summary, whose ``tokens_seen`` is exact at the last step; before
    that, the newest metrics line that counted tokens gives the figure so far.
    """
    events = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "event")
    for event in session.scalars(events.order_by(JobEvent.id.desc())):
        data = event.data or {}
        if data.get("type") == "completed":
            seen = (data.get("data") or {}).get("tokens_seen")
            if isinstance(seen, int | float):
                return int(seen)
            break
    metrics = select(Metric).where(Metric.job_id == job_id).order_by(Metric.step.desc()).limit(100)
    for row in session.scalars(metrics):
        seen = (row.data or {}).get("tokens_seen")
        if isinstance(seen, int | float):
            return int(seen)
    return None
