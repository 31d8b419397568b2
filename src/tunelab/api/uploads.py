"""Multipart uploads streamed to disk, with the size limit enforced while streaming.

FastAPI's ``UploadFile`` spools the whole body before the route runs, so a
limit checked afterwards comes too late. Here the raw request stream goes
through python-multipart's push parser chunk by chunk: file parts are written
to a temporary file under a server-chosen name in the tunelab home, text parts
are kept (small), and the byte count is checked on every chunk, answering
413 ``payload_too_large`` the moment it is exceeded. The client's file name is
kept only as a label; the suffix (file type) is taken from it after checking.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from tunelab.datasets.readers import SUFFIXES
from tunelab.errors import InvalidInput, PayloadTooLarge
from tunelab.jobs.names import check_name, check_tags
from tunelab.settings import Settings

MAX_FIELD_BYTES = 64 * 1024
MAX_FILENAME = 255  # what file systems allow for one name; the client's name is only a label
ALLOWED_SUFFIXES = tuple(SUFFIXES)  # what the readers read, from their one list


@dataclass
class Upload:
    """What a multipart body held: at most one file (on disk) and the text fields."""

    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    filename: str = ""
    size: int = 0

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def safe_suffix(filename: str) -> str:
    """The file type from the client's name: only a known suffix, never a path part."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    suffix = Path(base).suffix.lower()
    return suffix if suffix in ALLOWED_SUFFIXES else ""


class _Parts:
    """Callbacks for the push parser: route bytes to the file or a field buffer."""

    def __init__(self, upload: Upload, target_dir: Path, limit: int, too_large: str | None = None,
                 limit_setting: str = "TUNELAB_MAX_UPLOAD_BYTES") -> None:  # fmt: skip
        self.upload, self.target_dir, self.limit = upload, target_dir, limit
        self.too_large, self.limit_setting = too_large, limit_setting
        self.header_field = b""
        self.headers: dict[bytes, bytes] = {}
        self.name = ""
        self.buffer = bytearray()
        self.handle: Any = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        key = self.header_field.lower()
        self.headers[key] = self.headers.get(key, b"") + data[start:end]

    def on_header_end(self) -> None:
        self.header_field = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self.headers = {}
        if filename is not None:
            if self.handle is not None or self.upload.path is not None:
                raise InvalidInput("only one file per upload", "send one file in the `file` field")
            self.upload.filename = filename.decode("utf-8", "replace")
            self.upload.path = self.target_dir / f"upload-{uuid.uuid4().hex}.part"
            self.handle = open(self.upload.path, "wb")  # noqa: SIM115 - closed in on_part_end/close

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.handle is not None:
            self.upload.size += len(chunk)
            if self.upload.size > self.limit:
                raise PayloadTooLarge(
                    self.too_large or f"upload exceeds the limit of {self.limit} bytes",
                    f"send a smaller file (at most {self.limit:,} bytes), or raise "
                    f"{self.limit_setting} on the server",
                    details={"limit": self.limit},
                )
            self.handle.write(chunk)
        else:
            self.buffer += chunk
            if len(self.buffer) > MAX_FIELD_BYTES:
                raise PayloadTooLarge(f"form field `{self.name}` is too large", "keep fields under 64 KiB")

    def on_part_end(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        else:
            self.upload.fields[self.name] = self.buffer.decode("utf-8", "replace")
        self.buffer = bytearray()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


async def receive_upload(request: Request, target_dir: Path, limit: int, *, too_large: str | None = None,
                         limit_setting: str = "TUNELAB_MAX_UPLOAD_BYTES") -> Upload:  # fmt: skip
    """Stream a ``multipart/form-data`` body; the file lands in ``target_dir`` under a server name.

    ``too_large`` replaces the 413's message (the preview route answers in the
    guide's words); ``limit_setting`` is the setting its hint names.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise InvalidInput(
            "expected a multipart/form-data upload", "send the file as form field `file` (curl -F file=@data.jsonl)"
        )
    target_dir.mkdir(parents=True, exist_ok=True)
    upload = Upload()
    parts = _Parts(upload, target_dir, limit, too_large, limit_setting)
    callbacks = {name: getattr(parts, name) for name in dir(parts) if name.startswith("on_")}
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as error:  # a broken body: wrong boundary, bad headers, cut short
        parts.close()
        upload.discard()
        raise InvalidInput(
            f"the multipart body cannot be read: {str(error)[:200]}",
            "send a multipart/form-data body whose parts match its boundary (curl -F file=@data.jsonl)",
        ) from None
    except BaseException:
        parts.close()
        upload.discard()
        raise
    parts.close()
    if upload.path is None:
        raise InvalidInput("the upload holds no file", "send the file in form field `file`")
    return upload


def finalise(upload: Upload, directory: Path, stem: str) -> Path:
    """Move the uploaded file to ``directory/<stem><suffix>``; ``stem`` is a server id."""
    assert upload.path is not None
    try:
        check_name(upload.filename, "filename", max_length=MAX_FILENAME)
    except InvalidInput:
        upload.discard()
        raise
    suffix = safe_suffix(upload.filename)
    if not suffix:
        upload.discard()
        raise InvalidInput(
            f"file type of {Path(upload.filename.replace(chr(92), '/')).name!r} is not supported",
            f"upload one of: {', '.join(ALLOWED_SUFFIXES)}",
        )
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{stem}{suffix}"
    os.replace(upload.path, target)
    upload.path = target
    return target


# -- dataset files: what POST /api/datasets, /api/datasets/preview and /v1/files receive ------


async def receive_dataset_file(request: Request, settings: Settings, *, limit: int | None = None,
                               too_large: str | None = None,
                               limit_setting: str = "TUNELAB_MAX_UPLOAD_BYTES") -> tuple[Upload, Path]:  # fmt: skip
    """Stream the multipart body to ``<home>/uploads/<server id><suffix>``; the caller removes it.

    ``limit`` defaults to ``max_upload_bytes``; the preview route passes its own.
    """
    directory = settings.home / "uploads"
    upload = await receive_upload(request, directory, limit or settings.max_upload_bytes,
                                  too_large=too_large, limit_setting=limit_setting)  # fmt: skip
    return upload, finalise(upload, directory, f"upload-{uuid.uuid4().hex}")


def client_name(upload: Upload) -> str:
    """The client's file name without any folder part: a label for answers, never a path."""
    return Path(upload.filename.replace("\\", "/")).name


def parse_mapping_field(raw: str | None) -> dict[str, str] | None:
    """The ``mapping`` form field (a JSON object of column rules), checked."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput("`mapping` must be a JSON object", 'send e.g. mapping={"prompt": "question"}')
    return {str(k): str(v) for k, v in value.items()}


def parse_tags_field(raw: str | None) -> list[str]:
    """The ``tags`` form field: a JSON list (``["a", "b"]``) or comma-separated text (``a, b``), checked."""
    if not raw or not raw.strip():
        return []
    text = raw.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidInput("`tags` is not valid JSON", 'send tags=["support", "v1"] or tags=support,v1') from None
    else:
        value = text.split(",")
    return check_tags(value)


def dataset_name(upload: Upload) -> str:
    """The ``name`` field (refused when it holds control characters), else the file's stem."""
    requested = upload.fields.get("name")
    if requested:
        return check_name(requested, "name") or ""
    stem = Path(client_name(upload)).stem
    try:
        return check_name(stem, "name") or f"dataset-{uuid.uuid4().hex[:8]}"
    except InvalidInput:
        return f"dataset-{uuid.uuid4().hex[:8]}"


def multipart_body(file_help: str = "", **fields: str) -> dict[str, Any]:
    """OpenAPI ``openapi_extra`` for a route that reads a multipart upload itself.

    Upload routes stream the body through ``receive_dataset_file`` instead of
    FastAPI's form parsing, so their request body is declared here: a required
    binary ``file`` plus optional string ``fields`` (name -> description).
    """
    file_schema: dict[str, Any] = {"type": "string", "format": "binary"}
    if file_help:
        file_schema["description"] = file_help
    properties: dict[str, Any] = {"file": file_schema}
    properties |= {name: {"type": "string", "description": text} if text else {"type": "string"}
                   for name, text in fields.items()}  # fmt: skip
    schema = {"type": "object", "required": ["file"], "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}

