"""Datasets: streamed upload, preview without saving, versions, rows, quality, repair, delete.

Uploads are multipart with the file in field ``file`` and optional text fields
``name``, ``description``, ``format`` and ``mapping`` (JSON). Every file on
disk is named from server ids; the client's file name is only a label.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from tunelab.api.deps import ReadScope, SessionDep, SettingsDep, TrainScope
from tunelab.api.ingest import ingest_upload, parse_mapping_field, receive_dataset_file
from tunelab.api.schemas import Page
from tunelab.store import catalog

router = APIRouter(prefix="/api/datasets", tags=["datasets"])

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {"type": "string", "description": "Dataset name (a label)."},
                        "description": {"type": "string"},
                        "format": {"type": "string", "description": "Force a format; else detected."},
                        "mapping": {"type": "string", "description": "JSON column mapping."},
                    },
                }
            }
        },
    }
}


class RepairRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(default=None, description="Version to repair; default the latest.")


def _dataset_dict(session: Any, dataset: Any) -> dict[str, Any]:
    out = dataset.to_dict()
    if dataset.latest_version_id:
        out["latest_version"] = catalog.get_dataset_version(session, dataset.latest_version_id).to_dict()
    return out


def _version(session: Any, dataset: str, version: str | None) -> Any:
    row = catalog.get_dataset(session, dataset)
    version_id = version or row.latest_version_id or ""
    found = catalog.get_dataset_version(session, version_id)
    if found.dataset_id != row.id:
        from tunelab.errors import NotFound

        raise NotFound(f"dataset {dataset!r} has no version {version_id!r}", "list its versions first")
    return found


@router.post("", status_code=201, summary="Upload a dataset file (streamed, size-limited)",
             openapi_extra=_UPLOAD_BODY)  # fmt: skip
async def upload_dataset(request: Request, session: SessionDep, settings: SettingsDep,
                         _: TrainScope) -> dict[str, Any]:  # fmt: skip
    version, _upload = await ingest_upload(request, session, settings)
    dataset = catalog.get_dataset(session, version.dataset_id)
    return _dataset_dict(session, dataset) | {"version": version.to_dict()}


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
    out["path"] = Path(upload.filename.replace("\\", "/")).name  # never reveal server paths
    return out | {"ok": report.ok}


@router.get("", response_model=Page, summary="List datasets")
def list_datasets(session: SessionDep, _: ReadScope,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:  # fmt: skip
    rows, total = catalog.list_datasets(session, limit=limit, offset=offset)
    return {"data": [row.to_dict() for row in rows], "count": total}


@router.get("/{dataset}", summary="One dataset (by id or name) with its latest version")
def get_dataset(dataset: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return _dataset_dict(session, catalog.get_dataset(session, dataset))


@router.get("/{dataset}/versions", response_model=Page, summary="A dataset's versions, oldest first")
def list_versions(dataset: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    rows = catalog.list_dataset_versions(session, dataset)
    return {"data": [row.to_dict() for row in rows], "count": len(rows)}


@router.get("/{dataset}/rows", response_model=Page, summary="Normalised records, paged")
def list_rows(dataset: str, session: SessionDep, settings: SettingsDep, _: ReadScope,
              version: Annotated[str | None, Query(description="Version id; default the latest.")] = None,
              offset: Annotated[int, Query(ge=0)] = 0,
              limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:  # fmt: skip
    from tunelab.datasets.versions import load_version

    row = _version(session, dataset, version)
    stored = load_version(row.id, home=settings.home)
    page = itertools.islice(stored.iter_records(), offset, offset + limit)
    return {"data": [record.to_json_dict() for record in page], "count": row.num_rows}


@router.get("/{dataset}/quality", summary="Quality report of a stored version")
async def quality_report(dataset: str, session: SessionDep, settings: SettingsDep, _: ReadScope,
                         version: Annotated[str | None, Query()] = None) -> dict[str, Any]:  # fmt: skip
    from tunelab.datasets.inspection import inspect_file
    from tunelab.datasets.versions import load_version

    row = _version(session, dataset, version)
    stored = load_version(row.id, home=settings.home)
    report = await run_in_threadpool(inspect_file, stored.records_path)
    out = report.model_dump(mode="json", exclude={"path"})
    return out | {"version": row.id, "ok": report.ok}


@router.post("/{dataset}/repair", status_code=201, summary="Repair into a new version")
async def repair_dataset(dataset: str, body: RepairRequest, session: SessionDep,
                         settings: SettingsDep, _: TrainScope) -> dict[str, Any]:  # fmt: skip
    from tunelab.datasets import repair as repair_module

    row = _version(session, dataset, body.version)
    parent = catalog.get_dataset(session, row.dataset_id)
    version, report = await run_in_threadpool(repair_module.repair_version, row.id, home=settings.home)
    counts = dict(version.counts)
    stored = catalog.register_dataset_version(
        session, name=parent.name, version_id=version.version_id, path=str(version.records_path),
        format=version.format or "", num_rows=counts.get("records", 0), counts=counts,
        parent_id=row.id, note="repaired",
    )  # fmt: skip
    return stored.to_dict() | {"report": report.model_dump(mode="json"), "summary": report.summary()}


@router.delete("/{dataset}", status_code=204, summary="Delete a dataset and its stored versions")
def delete_dataset(dataset: str, session: SessionDep, settings: SettingsDep, _: TrainScope) -> Response:
    root = settings.datasets_dir.resolve()
    for path in catalog.delete_dataset(session, dataset):
        folder = Path(path).resolve()
        folder = folder.parent if folder.is_file() else folder
        if folder.parent == root:  # only ever a version folder under the datasets dir
            shutil.rmtree(folder, ignore_errors=True)
    return Response(status_code=204)
