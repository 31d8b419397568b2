"""The training monitor (the workflow guide's "Training API"): status, summary, losses, resources, live steps.

Thin over ``tunelab.jobs.training_monitor``. The WebSocket reuses the job
stream of ``streams.py`` (same cursor, same replay, same end), shaped per step
as the guide's message; ``tunelab serve --training-port 8001`` serves this same
app on the guide's second port.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from tunelab.api.deps import ReadScope, SessionDep, SettingsDep
from tunelab.api.routes.streams import serve_job_socket
from tunelab.jobs import service
from tunelab.jobs import training_monitor as monitor

router = APIRouter(tags=["training"])


class TrainingStatus(BaseModel):
    """One job's training state now."""

    model_config = ConfigDict(extra="allow")

    job_id: str = Field(description="The job id.")
    jobUid: str = Field(description="The job id under the guide's name.")
    status: str = Field(description="created, queued, running, paused, completed, failed or cancelled.")
    progress: float = Field(description="Fraction of steps done, 0 to 1.")
    iteration: int = Field(description="Steps done.")
    total: int | None = Field(description="Steps in the run (known once the engine started).")
    train_loss: float | None = Field(description="Latest training loss.")
    validation_loss: float | None = Field(description="Latest validation (eval) loss.")
    eta_s: float | None = Field(description="Estimated seconds left while running.")
    elapsed_s: float | None = Field(description="Seconds trained so far.")
    queue_wait_s: float | None = Field(description="Seconds from queued to started (or to now).")


class TrainingSummary(BaseModel):
    """The studio at a glance."""

    counts: dict[str, int] = Field(description="Jobs per state (every state listed).")
    total: int = Field(description="All jobs.")
    running: list[dict[str, Any]] = Field(description="Running jobs: progress, loss, throughput, ETA.")
    queue: dict[str, Any] = Field(description="waiting, oldest_wait_s, average_wait_s, sampled_jobs.")


class TrainingLosses(BaseModel):
    """Loss points of one job, oldest first."""

    model_config = ConfigDict(extra="allow")

    job_id: str = Field(description="The job the points belong to (the running one by default).")
    status: str = Field(description="That job's status.")
    data: list[dict[str, Any]] = Field(
        description="{step, epoch, train_loss, validation_loss, learning_rate, grad_norm} per logged step."
    )
    count: int = Field(description="Points returned.")
    train_losses: list[float] = Field(description="The training losses alone.")
    validation_losses: list[float] = Field(description="The validation losses alone.")


@router.get("/api/training/status/{job_id}", response_model=TrainingStatus, summary="One job's training status")
def training_status(job_id: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return monitor.training_status(session, job_id)


@router.get("/api/training/summary", response_model=TrainingSummary, summary="Counts, running jobs, queue wait")
def training_summary(session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return monitor.training_summary(session)


@router.get("/api/training/losses", response_model=TrainingLosses, summary="Recent losses of a job")
def training_losses(
    session: SessionDep,
    _: ReadScope,
    last_n: Annotated[int | None, Query(ge=1, le=100_000, description="Only the latest n steps.")] = None,
    job_id: Annotated[str | None, Query(description="This job; default the running one (else the latest).")] = None,
) -> dict[str, Any]:
    return monitor.training_losses(session, job_id, last_n)


@router.get("/api/training/resources/current", summary="CPU, RAM, disk and GPUs now")
async def training_resources(settings: SettingsDep, _: ReadScope) -> dict[str, Any]:
    from tunelab.monitor import sample_resources

    sample = await run_in_threadpool(sample_resources, settings.home)
    return sample if isinstance(sample, dict) else sample.model_dump(mode="json")


def _open_feed(
    sessions: sessionmaker[Session], job_id: str, cursor: int
) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """The feed for a job, caught up on the events before ``cursor``; NotFound for an unknown job."""
    with sessions() as session:
        feed = monitor.TrainingFeed(service.get_job(session, job_id))
        feed.seed(session, cursor)
        return feed.message


@router.websocket("/ws/training/{job_id}")
async def stream_training(websocket: WebSocket, job_id: str, after: int | None = None) -> None:
    """One ``training`` message per logged step, ``status`` messages, then ``end`` and close.

    Every message has ``id``, the stream cursor: reconnect with ``?after=<id>``
    (or a ``Last-Event-ID`` header) to continue without gaps or repeats. Errors
    arrive as one ``{"type": "error", "error": {...}}`` before the socket closes.
    """
    await serve_job_socket(websocket, job_id, after, _open_feed)
