"""Datasets: streamed upload, preview without saving, versions, rows, quality, repair, delete.

Uploads are multipart with the file in field ``file`` and optional text fields
``name``, ``description``, ``tags``, ``format`` and ``mapping`` (JSON). Every
file on disk is named from server ids; the client's file name and the dataset's
name are only labels. ``POST /api/preview-csv`` is the workflow guide's preview
(``preview_router``, mounted at the root of ``/api``).

Thin over the dataset service (``tunelab.jobs.datasets``), which the CLI and
``/v1/files`` use too: each route checks the request, calls one service
function and shapes its answer. Service calls that read or write files run in
the thread pool so a large dataset never blocks the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from tunelab.api.deps import ReadScope, SessionDep, SettingsDep, TrainScope
from tunelab.api.schemas import Offset, Page
from tunelab.api.uploads import (
    client_name,
    dataset_name,
    multipart_body,
    parse_mapping_field,
    parse_tags_field,
    receive_dataset_file,
)
from tunelab.datasets.inspection import (
    PREVIEW_DATA_ROWS,
    TablePreview,
    preview_table,
    size_limit_sentence,
)
from tunelab.jobs import datasets as dataset_service
from tunelab.jobs.paths import shown_path

if TYPE_CHECKING:  # rows are only passed through to their answer's shape
    from tunelab.settings import Settings
    from tunelab.store.models import Dataset, DatasetVersion

router = APIRouter(prefix="/api/datasets", tags=["datasets"])
preview_router = APIRouter(prefix="/api", tags=["datasets"])

_UPLOAD_BODY = multipart_body(
    name="Dataset name (a label).",
    description="",
    tags='Tags: a JSON list (["support"]) or "a, b".',
    format="Force a format; else detected.",
    mapping="JSON column mapping.",
)


class RepairRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(default=None, description="Version to repair; default the latest.")


def _version_dict(row: DatasetVersion, settings: Settings) -> dict[str, Any]:
    """A version row without the server's absolute path: ``path`` is relative to the home."""
    return row.to_dict() | {"path": shown_path(row.path, settings)}


def _dataset_dict(session: Session, dataset: Dataset, settings: Settings) -> dict[str, Any]:
    out = dataset.to_dict()
    latest = dataset_service.latest_version(session, dataset)
    if latest is not None:
        out["latest_version"] = _version_dict(latest, settings)
    return out


@router.post("", status_code=201, summary="Upload a dataset file (streamed, size-limited)",
             openapi_extra=_UPLOAD_BODY)  # fmt: skip
async def upload_dataset(request: Request, session: SessionDep, settings: SettingsDep,
                         _: TrainScope) -> dict[str, Any]:  # fmt: skip
    upload, path = await receive_dataset_file(request, settings)
    try:
        fields = upload.fields
        dataset, version = await run_in_threadpool(
            dataset_service.ingest, session, path, name=dataset_name(upload),
            description=fields.get("description", ""), format=fields.get("format") or None,
            mapping=parse_mapping_field(fields.get("mapping")), source_name=client_name(upload),
            settings=settings, tags=parse_tags_field(fields.get("tags")),
        )  # fmt: skip
    finally:
        path.unlink(missing_ok=True)  # the normalised version is the copy that is kept
    return _dataset_dict(session, dataset, settings) | {"version": _version_dict(version, settings)}


@router.post("/preview", summary="Validate and preview a file without saving it",
             openapi_extra=_UPLOAD_BODY)  # fmt: skip
async def preview_dataset(request: Request, settings: SettingsDep, _: ReadScope) -> dict[str, Any]:
    from tunelab.datasets.inspection import inspect_file

    upload, path = await receive_dataset_file(request, settings)
    try:
        report = await run_in_threadpool(
            inspect_file, path, format=upload.fields.get("format") or None,
            mapping=parse_mapping_field(upload.fields.get("mapping")),
        )  # fmt: skip
    finally:
        path.unlink(missing_ok=True)
    out = report.model_dump(mode="json")
    out["path"] = client_name(upload)  # never reveal server paths
    return out | {"ok": report.ok}


@router.get("", response_model=Page, summary="List datasets")
def list_datasets(session: SessionDep, _: ReadScope,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  offset: Offset = 0,
                  tag: Annotated[str | None, Query(max_length=100, description="Only datasets with this tag.")] = None,
                  ) -> dict[str, Any]:  # fmt: skip
    rows, total = dataset_service.list_datasets(session, limit=limit, offset=offset, tag=tag)
    return {"data": [row.to_dict() for row in rows], "count": total}


@router.get("/{dataset}", summary="One dataset (by id or name) with its latest version")
def get_dataset(dataset: str, session: SessionDep, settings: SettingsDep, _: ReadScope) -> dict[str, Any]:
    return _dataset_dict(session, dataset_service.get(session, dataset), settings)


@router.get("/{dataset}/versions", response_model=Page, summary="A dataset's versions, oldest first")
def list_versions(dataset: str, session: SessionDep, settings: SettingsDep, _: ReadScope) -> dict[str, Any]:
    rows = dataset_service.list_versions(session, dataset)
    return {"data": [_version_dict(row, settings) for row in rows], "count": len(rows)}


@router.get("/{dataset}/rows", response_model=Page, summary="Normalised records, paged")
async def list_rows(dataset: str, session: SessionDep, settings: SettingsDep, _: ReadScope,
                    version: Annotated[str | None, Query(description="Version id; default the latest.")] = None,
                    offset: Offset = 0,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:  # fmt: skip
    records, total = await run_in_threadpool(
        dataset_service.read_rows, session, dataset, version=version, offset=offset, limit=limit,
        settings=settings,
    )  # fmt: skip
    return {"data": [record.to_json_dict() for record in records], "count": total}


@router.get("/{dataset}/quality", summary="Quality report of a stored version")
async def quality_report(dataset: str, session: SessionDep, settings: SettingsDep, _: ReadScope,
                         version: Annotated[str | None, Query()] = None) -> dict[str, Any]:  # fmt: skip
    row, report = await run_in_threadpool(
        dataset_service.quality, session, dataset, version=version, settings=settings
    )
    out = report.model_dump(mode="json", exclude={"path"})
    return out | {"version": row.id, "ok": report.ok}


@router.post("/{dataset}/repair", status_code=201, summary="Repair into a new version")
async def repair_dataset(dataset: str, body: RepairRequest, session: SessionDep,
                         settings: SettingsDep, _: TrainScope) -> dict[str, Any]:  # fmt: skip
    row, report = await run_in_threadpool(
        dataset_service.repair, session, dataset, version=body.version, settings=settings
    )
    return _version_dict(row, settings) | {"report": report.model_dump(mode="json"), "summary": report.summary()}


@router.delete("/{dataset}", status_code=204, summary="Delete a dataset and its stored versions")
def delete_dataset(dataset: str, session: SessionDep, settings: SettingsDep, _: TrainScope) -> Response:
    dataset_service.delete(session, dataset, settings=settings)
    return Response(status_code=204)


_PREVIEW_BODY = multipart_body(
    "CSV, TSV, JSON, JSONL, TXT or Parquet.",
    format="Force a format; else detected.",
    mapping="JSON column mapping.",
)


@preview_router.post("/preview-csv", response_model=TablePreview,
                     summary="The guide's dataset preview: columns, first rows, statistics, validation errors",
                     openapi_extra=_PREVIEW_BODY)  # fmt: skip
async def preview_csv(request: Request, settings: SettingsDep, _: ReadScope,
                      rows: Annotated[int, Query(ge=0, le=100, description="How many rows `data` holds.")] = PREVIEW_DATA_ROWS,
                      ) -> TablePreview:  # fmt: skip
    """Any file tunelab reads (not only CSV), up to ``preview_max_bytes`` (50 MB by default); nothing is stored."""
    limit = settings.preview_max_bytes
    upload, path = await receive_dataset_file(request, settings, limit=limit, too_large=size_limit_sentence(limit),
                                              limit_setting="TUNELAB_PREVIEW_MAX_BYTES")  # fmt: skip
    try:
        return await run_in_threadpool(
            preview_table, path, filename=client_name(upload), rows=rows, max_bytes=limit,
            format=upload.fields.get("format") or None, mapping=parse_mapping_field(upload.fields.get("mapping")),
        )  # fmt: skip
    finally:
        path.unlink(missing_ok=True)
