"""Jobs: create, list, inspect, control (pause/resume/cancel/retry), results, compare.

Thin over ``tunelab.jobs.service``: validate the request, call the service,
shape the answer. State rules (409 with the allowed transitions) live in the
service, not here.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from tunelab.api.deps import (
    ReadScope,
    ServerPaths,
    SessionDep,
    SettingsDep,
    TrainScope,
    shared_read,
)
from tunelab.api.schemas import (
    AfterCursor,
    CompareRequest,
    IdPath,
    JobCreate,
    JobPublic,
    JobsPublic,
    Offset,
    Page,
)
from tunelab.errors import InvalidInput
from tunelab.jobs import service
from tunelab.jobs.names import check_name, check_tags, check_text
from tunelab.jobs.trainconfig import job_request as request_config

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


def save_options(body: JobCreate) -> dict[str, Any]:
    """``save`` or the guide's ``modelSaving`` (not both) as the service's save options."""
    if body.modelSaving is not None and "save" in body.model_fields_set:
        raise InvalidInput("give `save` or `modelSaving`, not both", "they are the same options; send one")
    if body.modelSaving is not None:
        guide = body.modelSaving
        options = {"save_model": guide.saveModel, "model_name": guide.modelName,
                   "push_to_hub": guide.pushToHub, "make_public": guide.makePublic}  # fmt: skip
    else:
        options = body.save.model_dump()
    check_name(options["model_name"], "modelSaving.modelName" if body.modelSaving else "save.model_name")
    options["public"] = options["make_public"]  # the service's name for it
    if body.resources is not None:
        options["resources"] = body.resources.model_dump()
    return options


@router.post("", status_code=201, response_model=JobPublic, summary="Create (and queue) a job")
def create_job(body: JobCreate, session: SessionDep, settings: SettingsDep, _: TrainScope,
               paths: ServerPaths) -> dict[str, Any]:  # fmt: skip
    """The guide's body works as printed: model and dataset as ``{uid, name}``, ``modelSaving``.

    The answer is the job with ``jobUid`` (= ``id``), and ``warnings`` when
    something sent was not used as the sender may have meant.
    """
    check_name(body.name, "name")  # labels first: a bad name is the answer, whatever the configuration
    check_text(body.description, "description")
    check_tags(body.tags)
    configuration = body.configuration.model_dump(exclude_none=True) if body.configuration else None
    config, configuration_id, warnings = request_config(session, configuration, body.configuration_id, paths)
    job = service.create_job(
        session,
        config,
        name=body.name,
        description=body.description,
        tags=body.tags,
        save_options=save_options(body),
        priority=body.priority,
        timeout_s=body.timeout_s,
        max_attempts=body.max_attempts,
        submit=body.submit,
        configuration_id=configuration_id,
        paths=paths,
        provider=body.provider,
        settings=settings,
    )
    out = job.to_dict()
    if warnings:
        out["warnings"] = warnings
    return out


@router.get("", response_model=JobsPublic, summary="List jobs (newest first)")
async def list_jobs(
    request: Request,
    session: SessionDep,
    _: ReadScope,
    status: Annotated[list[str] | None, Query(description="Filter by status (repeatable).")] = None,
    tag: Annotated[str | None, Query(description="Only jobs with this tag.")] = None,
    search: Annotated[str | None, Query(description="Substring of the job name.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> Response:
    def read(session: Session) -> dict[str, Any]:
        rows, total = service.list_jobs(session, status=status, tag=tag, search=search, limit=limit, offset=offset)
        return {"data": [row.to_dict() for row in rows], "count": total}

    key = ("jobs", tuple(status or ()), tag, search, limit, offset)
    return await shared_read(request, session, key, read, JobsPublic)


@router.post("/compare", summary="Compare several jobs on chosen metrics")
def compare_jobs(body: CompareRequest, session: SessionDep, settings: SettingsDep, _: ReadScope) -> dict[str, Any]:
    """Logged metrics by name, and the job totals final_loss, training_time, gpu_hours and cost."""
    return service.compare_jobs(session, body.job_ids, body.metrics, settings)


@router.get("/{job_id}", response_model=JobPublic, summary="One job")
async def get_job(request: Request, job_id: str, session: SessionDep, _: ReadScope) -> Response:
    return await shared_read(
        request, session, ("job", job_id), lambda session: service.get_job(session, job_id).to_dict(), JobPublic
    )


@router.post("/{job_id}/cancel", response_model=JobPublic, summary="Cancel a job")
def cancel_job(job_id: str, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    return service.cancel_job(session, job_id).to_dict()


@router.post("/{job_id}/pause", response_model=JobPublic, summary="Checkpoint and pause")
def pause_job(job_id: str, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    return service.pause_job(session, job_id).to_dict()


@router.post("/{job_id}/resume", response_model=JobPublic, summary="Queue a paused job again")
def resume_job(job_id: str, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    return service.resume_job(session, job_id).to_dict()


@router.post("/{job_id}/retry", status_code=201, response_model=JobPublic, summary="Retry as a new job")
def retry_job(job_id: str, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    return service.retry_job(session, job_id).to_dict()


@router.delete("/{job_id}", status_code=204, summary="Delete a finished job and its files")
def delete_job(job_id: str, session: SessionDep, settings: SettingsDep, _: TrainScope) -> Response:
    service.delete_job(session, job_id, settings=settings)
    return Response(status_code=204)


@router.get("/{job_id}/events", response_model=Page, summary="Events after a cursor")
async def list_events(
    request: Request,
    job_id: str,
    session: SessionDep,
    _: ReadScope,
    after: AfterCursor = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    type: Annotated[list[str] | None, Query(description="status, event, log, metrics, resources")] = None,
) -> Response:
    def read(session: Session) -> dict[str, Any]:
        rows = service.list_events(session, job_id, after=after, limit=limit, types=type)
        return {"data": [row.to_dict() for row in rows], "count": len(rows)}

    key = ("events", job_id, after, limit, tuple(type or ()))
    return await shared_read(request, session, key, read, Page)


@router.get("/{job_id}/metrics", response_model=Page, summary="Logged metrics by step")
async def list_metrics(
    request: Request,
    job_id: str,
    session: SessionDep,
    _: ReadScope,
    last_n: Annotated[int | None, Query(ge=1, le=100_000, description="Only the latest n steps.")] = None,
) -> Response:
    def read(session: Session) -> dict[str, Any]:
        rows = service.list_metrics(session, job_id, last_n=last_n)
        return {"data": [row.to_dict() for row in rows], "count": len(rows)}

    return await shared_read(request, session, ("metrics", job_id, last_n), read, Page)


@router.get("/{job_id}/checkpoints", response_model=Page, summary="Saved checkpoints")
def list_checkpoints(job_id: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    rows = service.list_checkpoints(session, job_id)
    return {"data": [row.to_dict() for row in rows], "count": len(rows)}


@router.get("/{job_id}/artifacts", response_model=Page, summary="Files the job produced")
def list_artifacts(job_id: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    rows = service.list_artifacts(session, job_id)
    return {"data": [row.to_dict() for row in rows], "count": len(rows)}


@router.get(
    "/{job_id}/artifacts/{artifact_id}",
    summary="Download an artifact (folders come as a .zip)",
    response_class=FileResponse,
)
def download_artifact(job_id: str, artifact_id: IdPath, session: SessionDep, _: ReadScope) -> FileResponse:
    artifact, path = service.get_artifact(session, job_id, artifact_id)
    if path.is_file():
        return FileResponse(path, filename=f"{job_id}-{artifact.id}-{path.name}")
    tmp = Path(tempfile.mkdtemp(prefix="tunelab-zip-"))
    archive = shutil.make_archive(str(tmp / f"{job_id}-{artifact.id}"), "zip", root_dir=path)
    return FileResponse(
        archive,
        filename=f"{job_id}-{artifact.id}-{artifact.kind}.zip",
        media_type="application/zip",
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )
