"""OpenAI-style aliases: ``/v1/files`` and ``/v1/fine_tuning/jobs`` over the same services.

Field names and object shapes follow OpenAI's fine-tuning API so the official
``openai`` client works against a studio: a file uploaded with purpose
``fine-tune`` becomes a stored dataset whose name is the file id; a job's
``training_file`` is that id and ``model`` a catalog, collection or Hub id (a
server path only as ``tunelab.jobs.paths`` allows).
``hyperparameters`` maps ``n_epochs``/``batch_size``/``learning_rate_multiplier``
and passes any other TrainConfig field (e.g. ``max_steps``) through.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from tunelab.api.deps import ReadScope, ServerPaths, SessionDep, SettingsDep, TrainScope
from tunelab.api.openai_shapes import event_object, file_object, job_object, list_object
from tunelab.api.schemas import MAX_ID
from tunelab.api.uploads import client_name, multipart_body, receive_dataset_file
from tunelab.errors import InvalidInput, NotFound
from tunelab.jobs import datasets as dataset_service
from tunelab.jobs import service
from tunelab.settings import Settings
from tunelab.training.methods import ADAPTER_LEARNING_RATE

if TYPE_CHECKING:  # rows are only passed through to their answer's shape
    from tunelab.store.models import Dataset, Job

router = APIRouter(prefix="/v1", tags=["openai-compatible"])
BASE_LEARNING_RATE = ADAPTER_LEARNING_RATE  # OpenAI's multiplier scales the adapters' default


class FineTuningJobCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description="Catalog id (smollm2-135m-instruct), collection entry or Hub id.")
    training_file: str = Field(min_length=1, description="File id from POST /v1/files.")
    validation_file: str | None = Field(default=None, description="File id for evaluation.")
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="OpenAI or TrainConfig names.")
    method: dict[str, Any] | None = Field(default=None, description="{type: supervised, supervised: {...}}.")
    suffix: str | None = Field(default=None, max_length=64, description="Added to the model name.")
    seed: int | None = Field(default=None, ge=0, description="Random seed.")
    metadata: dict[str, str] | None = Field(default=None, description="Up to 16 string pairs.")


def train_hyperparameters(body: FineTuningJobCreate) -> dict[str, Any]:
    """OpenAI's hyperparameters (top level or under method.supervised) -> TrainConfig fields."""
    given = dict(body.hyperparameters)
    if body.method:
        kind = body.method.get("type", "supervised")
        if kind != "supervised":
            raise InvalidInput(f"method {kind!r} is not supported here", "use method type 'supervised'")
        given |= (body.method.get("supervised") or {}).get("hyperparameters") or {}
    out: dict[str, Any] = {}
    for key, value in given.items():
        if value == "auto" or value is None:
            continue
        if key == "n_epochs":
            out["epochs"] = value
        elif key == "learning_rate_multiplier":
            out["learning_rate"] = min(1e-2, max(1e-6, BASE_LEARNING_RATE * float(value)))
        else:
            out[key] = value
    if body.seed is not None:
        out["seed"] = body.seed
    if body.validation_file:
        out["eval_dataset"] = body.validation_file
    return out


def _file(session: Session, dataset: Dataset, settings: Settings) -> dict[str, Any]:
    return file_object(dataset, dataset_service.source_bytes(session, dataset, settings=settings))


def _get_file(session: Session, file_id: str) -> Dataset:
    """A dataset uploaded through /v1/files; other datasets are not files here."""
    if not file_id.startswith("file-"):
        raise NotFound(f"no file {file_id!r}", "list files with GET /v1/files")
    return dataset_service.get(session, file_id)


def _job(session: Session, job: Job) -> dict[str, Any]:
    return job_object(job, service.trained_tokens(session, job.id))


_FILE_BODY = multipart_body("The JSONL training file.", purpose="Only `fine-tune`.")


@router.post("/files", summary="Upload a JSONL training file (purpose fine-tune)", openapi_extra=_FILE_BODY)
async def create_file(request: Request, session: SessionDep, settings: SettingsDep, _: TrainScope) -> dict[str, Any]:
    upload, path = await receive_dataset_file(request, settings)
    try:
        purpose = upload.fields.get("purpose", "fine-tune")
        if purpose != "fine-tune":
            raise InvalidInput(f"purpose {purpose!r} is not supported", "use purpose 'fine-tune'")
        dataset, _version = await run_in_threadpool(
            dataset_service.ingest, session, path, name=f"file-{uuid.uuid4().hex[:24]}",
            description=client_name(upload)[:500], source_name=client_name(upload), settings=settings,
        )  # fmt: skip
    finally:
        path.unlink(missing_ok=True)
    return _file(session, dataset, settings)


@router.get("/files", summary="List uploaded files")
def list_files(session: SessionDep, settings: SettingsDep, _: ReadScope) -> dict[str, Any]:
    rows, _total = dataset_service.list_datasets(session, limit=10_000)
    return list_object([_file(session, row, settings) for row in rows if row.name.startswith("file-")])


@router.get("/files/{file_id}", summary="One uploaded file")
def get_file(file_id: str, session: SessionDep, settings: SettingsDep, _: ReadScope) -> dict[str, Any]:
    return _file(session, _get_file(session, file_id), settings)


@router.delete("/files/{file_id}", summary="Delete an uploaded file")
def delete_file(file_id: str, session: SessionDep, settings: SettingsDep, _: TrainScope) -> dict[str, Any]:
    dataset_service.delete(session, _get_file(session, file_id).id, settings=settings)
    return {"id": file_id, "object": "file", "deleted": True}


@router.post("/fine_tuning/jobs", summary="Create a fine-tuning job")
def create_job(body: FineTuningJobCreate, session: SessionDep, _: TrainScope, paths: ServerPaths) -> dict[str, Any]:
    config = {"model": body.model, "dataset": body.training_file,
              "hyperparameters": train_hyperparameters(body)}  # fmt: skip
    job = service.create_job(
        session, config, name=body.suffix or "", tags=["openai"],
        description=str(body.metadata or ""),
        save_options={"save_model": True, "model_name": body.suffix, "push_to_hub": False,
                      "public": False, "make_public": False, "metadata": body.metadata or {}},
        paths=paths,
    )  # fmt: skip
    return _job(session, job)


@router.get("/fine_tuning/jobs", summary="List fine-tuning jobs, newest first")
def list_jobs(session: SessionDep, _: ReadScope, after: str | None = None,
              limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:  # fmt: skip
    rows, _total = service.list_jobs(session, limit=10_000)
    if after:
        ids = [row.id for row in rows]
        rows = rows[ids.index(after) + 1 :] if after in ids else []
    return list_object([_job(session, row) for row in rows[:limit]], has_more=len(rows) > limit)


@router.get("/fine_tuning/jobs/{job_id}", summary="One fine-tuning job")
def get_job(job_id: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return _job(session, service.get_job(session, job_id))


@router.post("/fine_tuning/jobs/{job_id}/cancel", summary="Cancel a job")
def cancel_job(job_id: str, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    return _job(session, service.cancel_job(session, job_id))


@router.post("/fine_tuning/jobs/{job_id}/pause", summary="Pause a running job")
def pause_job(job_id: str, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    return _job(session, service.pause_job(session, job_id))


@router.post("/fine_tuning/jobs/{job_id}/resume", summary="Resume a paused job")
def resume_job(job_id: str, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    return _job(session, service.resume_job(session, job_id))


@router.get("/fine_tuning/jobs/{job_id}/events", summary="Job events, newest first")
def list_events(job_id: str, session: SessionDep, _: ReadScope, after: str | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> dict[str, Any]:  # fmt: skip
    before = None
    if after:
        if not (after.isascii() and after.isdigit() and len(after) <= 16 and int(after) <= MAX_ID):
            raise InvalidInput(f"`after` {after[:40]!r} is not an event id", "pass the id of an event")
        before = int(after)
    rows = service.list_events(session, job_id, before=before, limit=limit + 1, newest_first=True)
    objects = [event_object(row) for row in rows]
    return list_object(objects[:limit], has_more=len(objects) > limit)


@router.get("/fine_tuning/jobs/{job_id}/checkpoints", summary="Job checkpoints, newest first")
def list_checkpoints(job_id: str, session: SessionDep, _: ReadScope,
                     limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, Any]:  # fmt: skip
    job = service.get_job(session, job_id)
    rows = service.list_checkpoints(session, job_id)[::-1]
    metrics = {row.step: row for row in service.list_metrics(session, job_id)}
    data = []
    for row in rows[:limit]:
        metric = metrics.get(row.step)
        data.append({
            "id": f"ftckpt-{row.id}", "object": "fine_tuning.job.checkpoint",
            "created_at": int(row.created_at.timestamp()), "fine_tuning_job_id": job.id,
            "fine_tuned_model_checkpoint": f"{job.id}:ckpt-step-{row.step}", "step_number": row.step,
            "metrics": {"step": row.step, "train_loss": metric.loss if metric else None,
                        "valid_loss": metric.eval_loss if metric else None},
        })  # fmt: skip
    return list_object(data, has_more=len(rows) > limit)
