"""From an uploaded file to a stored dataset version recorded in the store.

The datasets package writes the immutable, content-addressed version folder
(``normalize_file``); the store records it under a dataset name
(``register_dataset_version``). This thin glue is shared by ``/api/datasets``
and the OpenAI-style ``/v1/files``. The uploaded source is removed afterwards:
the normalised version is the copy that is kept.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from starlette.requests import Request

from tunelab.api.deps import check_name
from tunelab.api.uploads import Upload, finalise, receive_upload
from tunelab.errors import InvalidInput
from tunelab.settings import Settings
from tunelab.store import catalog


def uploads_dir(settings: Settings) -> Path:
    return settings.home / "uploads"


async def receive_dataset_file(request: Request, settings: Settings) -> tuple[Upload, Path]:
    """Stream the multipart body to ``<home>/uploads/<server id><suffix>``."""
    upload = await receive_upload(request, uploads_dir(settings), settings.max_upload_bytes)
    path = finalise(upload, uploads_dir(settings), f"upload-{uuid.uuid4().hex}")
    return upload, path


def parse_mapping_field(raw: str | None) -> dict[str, str] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput(
            "`mapping` must be a JSON object", 'send e.g. mapping={"prompt": "question"}'
        )
    return {str(k): str(v) for k, v in value.items()}


def dataset_name(upload: Upload, requested: str | None) -> str:
    """The requested name (checked), else the file's stem when it is a safe label."""
    if requested:
        return check_name(requested, "name") or ""
    stem = Path(upload.filename.replace("\\", "/")).stem
    try:
        return check_name(stem, "name") or f"dataset-{uuid.uuid4().hex[:8]}"
    except InvalidInput:
        return f"dataset-{uuid.uuid4().hex[:8]}"


def store_version(session: Session, settings: Settings, path: Path, *, name: str,
                  fields: dict[str, str], source_name: str) -> Any:
    """Normalise ``path`` into a version and record it under ``name``; returns the store row."""
    from tunelab.datasets.versions import normalize_file

    version = normalize_file(
        path, format=fields.get("format") or None,
        mapping=parse_mapping_field(fields.get("mapping")), home=settings.home,
    )  # fmt: skip
    counts = dict(version.counts)
    return catalog.register_dataset_version(
        session, name=name, version_id=version.version_id, path=str(version.records_path),
        format=version.format or "", kind=max(
            (k for k in counts if k != "records"), key=lambda k: counts[k], default=""
        ),
        num_rows=counts.get("records", 0), counts=counts,
        note=f"uploaded {source_name}"[:500], description=fields.get("description", ""),
    )  # fmt: skip


async def ingest_upload(request: Request, session: Session, settings: Settings) -> tuple[Any, Upload]:
    """Receive, normalise, record; the upload file is deleted whatever happens."""
    upload, path = await receive_dataset_file(request, settings)
    try:
        name = dataset_name(upload, upload.fields.get("name"))
        row = await run_in_threadpool(
            store_version, session, settings, path, name=name, fields=upload.fields,
            source_name=Path(upload.filename.replace("\\", "/")).name,
        )  # fmt: skip
    finally:
        path.unlink(missing_ok=True)
    return row, upload
