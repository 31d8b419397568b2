"""Exports of a completed job: start one, watch its progress, download it; the training script.

Thin over ``tunelab.export.service``: ``POST /api/jobs/{id}/exports`` answers
202 with the export's record at once while a background thread writes the
export into the job's run directory; ``GET`` lists records (status, stage,
progress, error) and ``.../download`` serves a finished one as a .zip. The
formats are ``export.exporter.FORMATS`` (also in ``GET /api/meta``). An optional
``push_to_hub`` also uploads the finished export to the Hugging Face Hub with the
server's token (``HF_TOKEN`` or its saved login); the body never carries a token.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from tunelab.api.deps import ReadScope, SessionDep, TrainScope
from tunelab.api.schemas import IdPath
from tunelab.export import service
from tunelab.export.exporter import FORMATS

router = APIRouter(prefix="/api/jobs", tags=["exports"])
FormatName = Literal[tuple(FORMATS)]  # type: ignore[valid-type]  # the names come from the one list


class HubPushCreate(BaseModel):
    """Where to push the export on the Hugging Face Hub; the token is the server's, never the caller's."""

    model_config = ConfigDict(extra="forbid")
    repo_id: str = Field(min_length=3, max_length=193, description="The Hub repository, `user/name` or `org/name`.")
    private: bool = Field(True, description="Create the repository private (an existing one keeps its visibility).")


class ExportCreate(BaseModel):
    """What to export."""

    model_config = ConfigDict(extra="forbid")
    format: FormatName = Field(description="; ".join(f"`{f.name}`: {f.description}" for f in FORMATS.values()))
    push_to_hub: HubPushCreate | None = Field(None, description="Also upload the finished export to the Hub.")


class ExportError(BaseModel):
    code: str
    message: str
    hint: str = ""


class HubPushPublic(BaseModel):
    """The push of an export: pending until the export is written, then pushed (with its URL) or failed."""

    repo_id: str
    private: bool
    status: Literal["pending", "pushed", "failed"]
    url: str | None = Field(None, description="The Hub repository's URL, once pushed.")
    error: ExportError | None = Field(None, description="Why the Hub refused (the export stays downloadable).")


class ExportPublic(BaseModel):
    """One export of a job and how far it got."""

    id: int
    job_id: str
    format: str
    status: Literal["queued", "running", "completed", "failed"]
    stage: str = Field(description="What the export is doing now (locating, merging, writing gguf, ...).")
    progress: float = Field(ge=0, le=1)
    path: str = Field(description="The export's folder, relative to the job's run directory.")
    size: int | None = Field(None, description="Bytes, once completed.")
    artifact_id: int | None = Field(None, description="The job artifact it became, once completed.")
    error: ExportError | None = None
    push: HubPushPublic | None = Field(None, description="The Hub push asked for with the export, if any.")
    created_at: str
    finished_at: str | None = None


class ExportsPublic(BaseModel):
    data: list[ExportPublic]
    count: int


class ScriptPublic(BaseModel):
    """A standalone training script (transformers + peft, or TRL's SFTTrainer) reproducing the job."""

    file_name: str
    framework: str
    script: str


@router.post("/{job_id}/exports", status_code=202, response_model=ExportPublic,
             summary="Export a completed job (runs in the background)")  # fmt: skip
def create_export(job_id: str, body: ExportCreate, request: Request, session: SessionDep,
                  _: TrainScope) -> dict[str, Any]:  # fmt: skip
    push = body.push_to_hub.model_dump() if body.push_to_hub else None
    return service.start_export(session, request.app.state.sessions, job_id, body.format, push=push)


@router.get("/{job_id}/exports", response_model=ExportsPublic, summary="The job's exports and their progress")
def list_exports(job_id: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    rows = service.list_exports(session, job_id)
    return {"data": rows, "count": len(rows)}


@router.get("/{job_id}/exports/script", response_model=ScriptPublic,
            summary="A standalone training script that reproduces the job")  # fmt: skip
def export_script(
    job_id: str,
    session: SessionDep,
    _: ReadScope,
    framework: Literal["transformers", "trl"] = Query("transformers"),
    output_dir: str = Query("output", min_length=1, max_length=200, pattern=r"^[^\x00]+$"),
) -> dict[str, Any]:
    text = service.job_script(session, job_id, framework=framework, output_dir=output_dir)
    return {"file_name": f"train_{job_id}.py", "framework": framework, "script": text}


@router.get("/{job_id}/exports/{export_id}", response_model=ExportPublic, summary="One export")
def get_export(job_id: str, export_id: IdPath, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return service.get_export(session, job_id, export_id)


@router.get("/{job_id}/exports/{export_id}/download", response_class=FileResponse,
            summary="Download a finished export as a .zip")  # fmt: skip
def download_export(job_id: str, export_id: IdPath, session: SessionDep, _: ReadScope) -> FileResponse:
    folder = service.export_path(session, job_id, export_id)
    tmp = Path(tempfile.mkdtemp(prefix="tunelab-export-zip-"))
    archive = shutil.make_archive(str(tmp / folder.name), "zip", root_dir=folder)
    return FileResponse(archive, filename=f"{job_id}-{folder.name}.zip", media_type="application/zip",
                        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))  # fmt: skip
