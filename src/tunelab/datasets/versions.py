"""Immutable, content-addressed dataset versions under ``<home>/datasets/``.

A version is a folder ``<version_id>/`` holding ``records.jsonl`` (one
canonical ``Record`` per line) and ``manifest.json`` (source, its sha256, the
format and mapping used, counts, creation time). The id is a hash of the
normalised records and the mapping, so normalising the same file the same way
twice gives the same id, and the second time writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunelab.datasets.mapping import Mapping, parse_mapping
from tunelab.datasets.records import Record
from tunelab.datasets.source import open_source
from tunelab.errors import DatasetError, NotFound
from tunelab.settings import get_settings

RECORDS = "records.jsonl"
MANIFEST = "manifest.json"


class DatasetVersion(BaseModel):
    """A stored, normalised dataset version (the manifest plus where it lives)."""

    model_config = ConfigDict(extra="forbid")

    version_id: str = Field(..., description="Content hash of records and mapping.")
    path: Path = Field(..., description="Folder holding records.jsonl and manifest.json.")
    source_name: str = Field("", description="File name the version was made from.")
    source_sha256: str = Field("", description="sha256 of the source file (or parent version id).")
    source_bytes: int = Field(0, ge=0, description="Size of the source file in bytes (0 when not recorded).")
    format: str | None = Field(None, description="Dataset format the source was read as.")
    mapping: Mapping = Field(default_factory=Mapping, description="Column and role mapping used.")
    counts: dict[str, int] = Field(default_factory=dict, description="records and records per kind.")
    created: str = Field("", description="ISO-8601 creation time (UTC).")
    parent: str | None = Field(None, description="Version this one was repaired from.")
    changes: dict[str, Any] | None = Field(None, description="Repair report, for repaired versions.")

    @property
    def records_path(self) -> Path:
        return self.path / RECORDS

    def iter_records(self) -> Iterator[Record]:
        """Stream the version's records."""
        with self.records_path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    yield Record.model_validate_json(line)

    def manifest(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"path"})


def datasets_dir(home: str | Path | None = None) -> Path:
    return Path(home) / "datasets" if home is not None else get_settings().datasets_dir


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _content_digest(mapping: Mapping) -> Any:
    """The content address starts with the mapping; each stored line of records follows."""
    return hashlib.sha256(json.dumps(mapping.model_dump(), sort_keys=True).encode() + b"\n")


def _version_id(digest: Any) -> str:
    return "ds-" + digest.hexdigest()[:24]


def verify_folder(folder: Path, version_id: str) -> str | None:
    """What is wrong with a version folder against its content address, or None when it is sound.

    The id is the hash of the mapping and the records, so a copy that came
    from elsewhere (the shared storage) can be checked without trusting it:
    its records must hash back to ``version_id`` and their count match the
    manifest's.
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        mapping = Mapping.model_validate(manifest.get("mapping") or {})
    except (OSError, ValueError, AttributeError) as error:
        return f"its manifest cannot be read ({error})"
    if manifest.get("version_id") != version_id:
        return f"its manifest names version {manifest.get('version_id')!r}"
    digest, lines = _content_digest(mapping), 0
    try:
        with (folder / RECORDS).open("rb") as handle:
            for line in handle:
                digest.update(line)
                lines += bool(line.strip())
    except OSError as error:
        return f"its records cannot be read ({error})"
    if _version_id(digest) != version_id:
        return f"its records hash to {_version_id(digest)}, not to {version_id}"
    if lines != (manifest.get("counts") or {}).get("records", lines):
        return f"it holds {lines} records, its manifest says {manifest['counts']['records']}"
    return None


def store_records(
    records: Iterable[Record],
    *,
    mapping: Mapping,
    home: str | Path | None,
    late: Callable[[], dict[str, Any]] | None = None,
    **manifest: Any,
) -> DatasetVersion:
    """Write records to a temp file while hashing them, then move into place by id.

    ``late`` supplies manifest fields known only after the records were consumed
    (a repair's report).
    """
    root = datasets_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    digest = _content_digest(mapping)
    kinds: Counter[str] = Counter()
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        with (tmp / RECORDS).open("w", encoding="utf-8") as out:
            for record in records:
                line = record.model_dump_json(exclude_none=True) + "\n"
                digest.update(line.encode())
                out.write(line)
                kinds[record.kind] += 1
        if not kinds:
            raise DatasetError("the dataset holds no rows", "Check that the right file was given", code="no_rows")
        version_id = _version_id(digest)
        final = root / version_id
        if (final / MANIFEST).exists():
            return load_version(version_id, home)
        if late is not None:
            manifest.update(late())
        version = DatasetVersion(
            version_id=version_id, path=final, mapping=mapping,
            counts={"records": sum(kinds.values()), **kinds},
            created=datetime.now(UTC).isoformat(timespec="seconds"), **manifest,
        )  # fmt: skip
        (tmp / MANIFEST).write_text(json.dumps(version.manifest(), indent=2, ensure_ascii=False))
        try:
            os.replace(tmp, final)
        except OSError:  # another process stored the same version first
            return load_version(version_id, home)
        return version
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def normalize_file(
    path: str | Path,
    *,
    format: str | None = None,
    mapping: Mapping | dict[str, str] | Iterable[str] | None = None,
    home: str | Path | None = None,
) -> DatasetVersion:
    """Normalise a file into a stored version; raises ``DatasetError`` on the first error."""
    source = open_source(path, format=format, mapping=parse_mapping(mapping))

    def records() -> Iterator[Record]:
        for row in source.rows:
            if row.problem is not None:
                raise row.problem.to_error()
            if row.record is not None:
                yield row.record

    return store_records(
        records(), mapping=source.mapping, home=home, source_name=source.path.name,
        source_sha256=file_sha256(source.path), source_bytes=source.path.stat().st_size,
        late=lambda: {"format": source.format},
    )  # fmt: skip


def load_version(version_id: str, home: str | Path | None = None) -> DatasetVersion:
    """The stored version ``version_id``; ``not_found`` if there is none."""
    folder = datasets_dir(home) / version_id
    manifest = folder / MANIFEST
    if "/" in version_id or version_id.startswith(".") or not manifest.exists():
        raise NotFound(
            f"dataset version {version_id!r} not found",
            "List stored versions with `tunelab datasets list`",
        )
    return DatasetVersion(path=folder, **json.loads(manifest.read_text(encoding="utf-8")))


def list_versions(home: str | Path | None = None) -> list[DatasetVersion]:
    """All stored versions, newest first."""
    root = datasets_dir(home)
    if not root.exists():
        return []
    found = [load_version(p.name, home) for p in root.iterdir() if (p / MANIFEST).exists()]
    return sorted(found, key=lambda v: v.created, reverse=True)
