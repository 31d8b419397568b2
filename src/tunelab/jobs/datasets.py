"""The dataset service: the one way a dataset is ingested, found, repaired, deleted or resolved.

There is one registry. The store's rows (``datasets``, ``dataset_versions``)
are the index of what exists; the version folders that ``tunelab.datasets``
writes under ``<home>/datasets/`` are the content. A folder without a row is
not a dataset (nothing lists or resolves it), so every entry point goes through
these functions: the REST routes, ``/v1/files``, ``tunelab datasets import``,
``tunelab train`` with a stored version, and the worker building a job's
TrainConfig. Each function takes a ``Session`` and commits what it changes.

Consistency rules, in the order things happen:

- **ingest / repair**: the file is read, validated and written first
  (``tunelab.datasets`` writes into a temporary folder and renames it into
  place, so a folder is complete or absent); only then is the row committed.
  Bad input raises before anything is written. If the row cannot be committed,
  a folder no row refers to is removed again, so nothing half-registered stays.
- **delete**: rows first, then files. A crash in between leaves only an
  unlisted folder, never a row whose files are gone. Versions another dataset
  still uses (the same content stored under a second name) are kept.
- **resolve**: a row whose files are missing is reported as such, with a hint,
  instead of handing the engine a path that fails later.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from tunelab.datasets import shared
from tunelab.datasets.inspection import InspectionReport, inspect_file
from tunelab.datasets.mapping import Mapping
from tunelab.datasets.readers import SUFFIXES
from tunelab.datasets.records import Record
from tunelab.datasets.repair import RepairReport, repair_version
from tunelab.datasets.versions import DatasetVersion as StoredVersion
from tunelab.datasets.versions import datasets_dir, load_version, normalize_file
from tunelab.errors import ConfigError, InvalidInput, NotFound
from tunelab.jobs.names import MAX_NAME, check_name, check_tags, check_text
from tunelab.jobs.paths import LOCAL, PathAccess, is_path_like, refuse, server_path
from tunelab.settings import Settings, get_settings
from tunelab.storage import ArtifactStorage, open_storage
from tunelab.store import catalog
from tunelab.store.models import Dataset, DatasetVersion

__all__ = [
    "admit",
    "delete",
    "get",
    "get_version",
    "ingest",
    "is_stored",
    "is_stored_reference",
    "latest_version",
    "list_datasets",
    "list_versions",
    "quality",
    "read_rows",
    "repair",
    "resolve",
    "source_bytes",
]

_PATH_SUFFIXES = tuple(SUFFIXES)


def _home(settings: Settings | None) -> Path:
    """The home whose ``datasets/`` holds the files: the caller's settings (the API app's), else the env's."""
    return (settings or get_settings()).home


def _storage(settings: Settings | None) -> ArtifactStorage | None:
    """The shared storage every machine stages versions from, or None (the default: the home is the only copy)."""
    return open_storage(settings or get_settings())


def _main_kind(counts: dict[str, int]) -> str:
    """The kind most records have (chat, text, preference): what the dashboard shows per version."""
    kinds = {key: value for key, value in counts.items() if key != "records"}
    return max(kinds, key=lambda key: kinds[key], default="")


def _register(session: Session, stored: StoredVersion, *, name: str, settings: Settings | None,
              **row: Any) -> DatasetVersion:  # fmt: skip
    """Commit the row for a version whose files are written (and shared); on failure remove files no row uses."""
    counts = dict(stored.counts)
    try:
        storage = _storage(settings)
        if storage is not None:  # before the row: a registered version is one every worker can stage
            shared.publish(stored, storage)
        return catalog.register_dataset_version(
            session, name=name, version_id=stored.version_id, path=str(stored.records_path),
            format=stored.format or "", kind=_main_kind(counts), num_rows=counts.get("records", 0),
            counts=counts, **row,
        )  # fmt: skip
    except BaseException:
        session.rollback()
        if not catalog.version_in_use(session, stored.version_id):
            _remove_folder(stored.records_path, settings)
        raise


def _remove_folder(records_path: str | Path, settings: Settings | None) -> None:
    """Remove a version folder, but only ever one directly under the datasets folder."""
    root = datasets_dir(_home(settings)).resolve()
    folder = Path(records_path).resolve()
    folder = folder.parent if folder.suffix else folder
    if folder.parent == root:
        shutil.rmtree(folder, ignore_errors=True)


def ingest(
    session: Session,
    path: str | Path,
    *,
    name: str,
    description: str = "",
    format: str | None = None,
    mapping: Mapping | dict[str, str] | Iterable[str] | None = None,
    source_name: str | None = None,
    settings: Settings | None = None,
    tags: Iterable[str] | None = None,
) -> tuple[Dataset, DatasetVersion]:
    """Detect, normalise and validate ``path``, store the immutable version, register it under ``name``.

    ``name`` is a label (any printable text, ``tunelab.jobs.names``), never
    part of a path: the files go to a folder named by the content hash. A new
    name creates the dataset, a known one gets a new latest version; ``tags``
    are added to the dataset's tags. Storing content that is already stored
    writes nothing and registers the existing version. Raises ``DatasetError``
    (422) at the first bad row, before anything is written.
    """
    if not name:
        raise InvalidInput(
            f"dataset name must be 1 to {MAX_NAME} characters, got none",
            "pass a label such as 'Customer Support Q&A'",
        )
    check_name(name, "name")
    check_text(description, "description", max_length=5000)
    clean_tags = check_tags(list(tags or []))
    stored = normalize_file(path, format=format, mapping=mapping, home=_home(settings))
    if not stored.records_path.is_file():  # a damaged folder (manifest, no records): write it anew
        _remove_folder(stored.path, settings)
        stored = normalize_file(path, format=format, mapping=mapping, home=_home(settings))
    label = source_name or Path(path).name
    version = _register(session, stored, name=name, settings=settings,
                        note=f"from {label}"[:500], description=description, tags=clean_tags)  # fmt: skip
    return catalog.get_dataset(session, name), version


def list_datasets(session: Session, *, limit: int = 100, offset: int = 0,
                  tag: str | None = None) -> tuple[list[Dataset], int]:  # fmt: skip
    """Datasets newest first (those tagged ``tag`` when given), one page, and the total."""
    return catalog.list_datasets(session, limit=limit, offset=offset, tag=tag)


def get(session: Session, dataset: str) -> Dataset:
    """A dataset by id or name; ``NotFound`` (404) with a hint otherwise."""
    return catalog.get_dataset(session, dataset)


def latest_version(session: Session, dataset: Dataset) -> DatasetVersion | None:
    """The version a dataset name stands for (what training on it reads), if it has one."""
    if not dataset.latest_version_id:
        return None
    return catalog.get_dataset_version(session, dataset.latest_version_id)


def list_versions(session: Session, dataset: str) -> list[DatasetVersion]:
    """A dataset's versions, oldest first."""
    return catalog.list_dataset_versions(session, dataset)


def get_version(session: Session, dataset: str, version: str | None = None) -> DatasetVersion:
    """Version ``version`` of ``dataset`` (default: its latest); ``NotFound`` if it is not one of its."""
    row = get(session, dataset)
    version_id = version or row.latest_version_id or ""
    if not version_id:
        raise NotFound(f"dataset {dataset!r} has no version", "upload a file to it first")
    found = catalog.get_dataset_version(session, version_id)
    if found.dataset_id != row.id and found.id != row.latest_version_id:
        raise NotFound(
            f"dataset {dataset!r} has no version {version_id!r}",
            f"list its versions with GET /api/datasets/{row.name}/versions",
        )
    return found


def _stored(row: DatasetVersion, settings: Settings | None) -> StoredVersion:
    """The files of a registered version in this home; a row whose folder is gone says so, with the way out.

    With shared storage a missing folder is staged from it first
    (``datasets/shared.py``: downloaded and checked against the version id).
    """
    try:
        stored = load_version(row.id, home=_home(settings))
    except NotFound:
        stored = None
    if stored is not None and stored.records_path.is_file():
        return stored
    storage = _storage(settings)
    if storage is not None:
        return shared.stage(row.id, _home(settings), storage)
    raise NotFound(
        f"the files of dataset version {row.id!r} are missing from the studio's datasets folder",
        "import the source file again (`tunelab datasets import FILE` or POST /api/datasets); "
        "the same content gets the same version id",
    )


def read_rows(session: Session, dataset: str, *, version: str | None = None, offset: int = 0,
              limit: int = 50, settings: Settings | None = None) -> tuple[list[Record], int]:  # fmt: skip
    """One page of a version's normalised records, and the version's record count."""
    row = get_version(session, dataset, version)
    records = itertools.islice(_stored(row, settings).iter_records(), offset, offset + limit)
    return list(records), row.num_rows


def quality(session: Session, dataset: str, *, version: str | None = None,
            settings: Settings | None = None) -> tuple[DatasetVersion, InspectionReport]:  # fmt: skip
    """The validation and quality report of a stored version (its normalised records)."""
    row = get_version(session, dataset, version)
    return row, inspect_file(_stored(row, settings).records_path)


def repair(session: Session, dataset: str, *, version: str | None = None,
           settings: Settings | None = None) -> tuple[DatasetVersion, RepairReport]:  # fmt: skip
    """Repair a version into a new one (never in place), registered as the dataset's latest."""
    row = get_version(session, dataset, version)
    owner = get(session, dataset)
    _stored(row, settings)  # a clear error when the parent's files are gone
    stored, report = repair_version(row.id, home=_home(settings))
    repaired = _register(session, stored, name=owner.name, settings=settings, parent_id=row.id,
                         note=f"repaired from {row.id}")  # fmt: skip
    return repaired, report


def delete(session: Session, dataset: str, *, settings: Settings | None = None) -> None:
    """Forget a dataset, then remove the version folders no other dataset uses (and their shared copies)."""
    storage = _storage(settings)
    for path in catalog.delete_dataset(session, dataset):
        _remove_folder(path, settings)
        if storage is not None:
            folder = Path(path)
            shared.unpublish((folder.parent if folder.suffix else folder).name, storage)


def source_bytes(session: Session, dataset: Dataset, *, settings: Settings | None = None) -> int:
    """Size in bytes of the file the dataset's latest version was made from.

    Versions stored before the size was recorded answer the size of their
    normalised copy, the closest real figure there is.
    """
    row = latest_version(session, dataset)
    if row is None:
        return 0
    stored = _stored(row, settings)
    return stored.source_bytes or stored.records_path.stat().st_size


def _find(session: Session, dataset: str) -> Dataset | None:
    """A dataset by id or name, or None: resolve falls back to paths rather than failing here."""
    try:
        return catalog.get_dataset(session, dataset)
    except NotFound:
        return None


def is_stored_reference(value: str) -> bool:
    """Whether ``value`` can only mean a stored dataset: not an existing file, and not path-like."""
    if not value or Path(value).expanduser().exists():
        return False
    return not ("/" in value or "\\" in value or value.lower().endswith(_PATH_SUFFIXES))


def is_stored(session: Session, dataset: str) -> bool:
    """Whether ``dataset`` is a stored version id or a dataset id or name (nothing on disk is looked at)."""
    return session.get(DatasetVersion, dataset) is not None or _find(session, dataset) is not None


def _version_row(session: Session, dataset: str) -> DatasetVersion | None:
    """The version a stored version id or dataset id/name (its latest) stands for, or None if none is stored."""
    version = session.get(DatasetVersion, dataset)
    if version is None:
        found = _find(session, dataset)
        if found is None:
            return None
        version = latest_version(session, found)
        if version is None:
            raise ConfigError(f"dataset {dataset!r} has no version yet", "upload a file to it first")
    return version


def _version_file(version: DatasetVersion, dataset: str, settings: Settings | None) -> str:
    """The version's normalised file on this machine.

    Without shared storage: where it was stored (any home on this disk: the row
    says), else the same content-addressed folder in this home. With it: always
    this home's copy, staged from the storage when missing, so a worker never
    depends on a path from another machine.
    """
    if not (settings or get_settings()).artifacts_url and Path(version.path).is_file():
        return str(Path(version.path).resolve())
    try:
        return str(_stored(version, settings).records_path.resolve())
    except NotFound as exc:  # registered, but its files are gone: the job cannot start
        raise ConfigError(exc.message, exc.hint, details={"dataset": dataset}) from None


def _stored_file(session: Session, dataset: str, settings: Settings | None) -> str | None:
    """The normalised file of a stored version id or dataset id/name (its latest), or None if none is stored."""
    version = _version_row(session, dataset)
    return None if version is None else _version_file(version, dataset, settings)


def _path_file(dataset: str, field: str, paths: PathAccess) -> str:
    """A dataset given as a server path: the absolute file, when ``paths`` allows it and it exists.

    Callers that may name no path get the same refusal for a missing and an
    existing file; a name that is not path-like is "not stored", not a path.
    """
    if not paths.relative:
        if not (is_path_like(dataset) or "/" in dataset or dataset.lower().endswith(_PATH_SUFFIXES)):
            raise ConfigError(
                f"dataset {dataset!r} is not a stored dataset",
                "upload it first (POST /api/datasets or `tunelab datasets import FILE`) and pass its "
                "name or version id (GET /api/datasets)",
                details={"dataset": dataset},
            )
        if not paths.allows_paths:
            raise refuse(field, paths)
    path = server_path(dataset, field, paths)
    if path.exists():
        return str(path)
    raise ConfigError(
        f"dataset {dataset!r} is neither a stored dataset nor an existing file",
        "import it first (`tunelab datasets import FILE`, or POST /api/datasets) and pass its "
        "name or version id (`tunelab datasets list`), or give the path of a dataset file",
        details={"dataset": dataset},
    )


def admit(session: Session, dataset: str, *, paths: PathAccess = LOCAL, field: str = "dataset",
          settings: Settings | None = None) -> str:  # fmt: skip
    """What a job stores for ``dataset``: the reference itself if stored, else the absolute allowed file.

    With shared storage a stored version the storage lacks (stored before the
    storage was configured) is uploaded here, so any worker can stage it.
    """
    version = _version_row(session, dataset)
    if version is None:
        return _path_file(dataset, field, paths)
    storage = _storage(settings)
    if storage is None or not shared.published(version.id, storage):  # one lookup when it is shared
        _version_file(version, dataset, settings)  # its files are here, or the job is refused
        if storage is not None:
            shared.publish(_stored(version, settings), storage)
    return dataset


def resolve(session: Session, dataset: str, *, settings: Settings | None = None, paths: PathAccess = LOCAL,
            field: str = "dataset") -> str:  # fmt: skip
    """A stored version id, a dataset id or name, or an allowed file path -> the file the engine reads.

    A version id or a dataset (its latest version) gives that version's
    normalised ``records.jsonl``; a server path is accepted only as ``paths``
    allows (``tunelab.jobs.paths``: the local CLI, an admin with
    ``TUNELAB_ALLOW_SERVER_PATHS``, a configuration admitted before) and given
    back absolute. Anything else is a ``ConfigError`` (422) naming the way to
    fix it, so a job that cannot find its data is refused before it is queued.
    """
    stored = _stored_file(session, dataset, settings)
    return stored if stored is not None else _path_file(dataset, field, paths)
