"""Store records for datasets (with versions) and the user's model collection.

The files themselves are written by ``tunelab.datasets`` (content-addressed,
immutable versions) and ``tunelab.models``; these functions only record what
exists so the API, the worker and other machines can find it. They are table
queries and nothing else: the dataset service (``tunelab.jobs.datasets``)
decides when files and rows change and keeps the two consistent. Functions take
a Session and commit their changes.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.errors import Conflict, NotFound
from tunelab.store.models import Dataset, DatasetVersion, ModelEntry


def register_dataset_version(
    session: Session,
    *,
    name: str,
    version_id: str,
    path: str,
    format: str = "",
    kind: str = "",
    num_rows: int = 0,
    num_invalid: int = 0,
    counts: dict[str, Any] | None = None,
    parent_id: str | None = None,
    note: str = "",
    description: str = "",
    tags: list[str] | None = None,
) -> DatasetVersion:
    """Record a stored version under dataset ``name`` (created if new); idempotent per version.

    ``tags`` are added to the dataset's tags (a new version never drops the
    ones an earlier upload gave).
    """
    dataset = session.scalars(select(Dataset).where(Dataset.name == name)).first()
    if dataset is None:
        dataset = Dataset(
            id=f"ds-{uuid.uuid4().hex[:12]}", name=name, description=description, tags=list(tags or [])
        )
        session.add(dataset)
        session.flush()
    elif tags:
        known = list(dataset.tags or [])
        dataset.tags = known + [tag for tag in tags if tag not in known]  # a new list: JSON is not mutable-tracked
    version = session.get(DatasetVersion, version_id)
    if version is None:
        version = DatasetVersion(
            id=version_id,
            dataset_id=dataset.id,
            parent_id=parent_id,
            path=str(path),
            format=format,
            kind=kind,
            num_rows=num_rows,
            num_invalid=num_invalid,
            counts=counts or {},
            note=note,
        )
        session.add(version)
    dataset.latest_version_id = version_id
    session.commit()
    return version


def get_dataset(session: Session, dataset: str) -> Dataset:
    """By dataset id or name, else NotFound."""
    row = (
        session.get(Dataset, dataset)
        or session.scalars(select(Dataset).where(Dataset.name == dataset)).first()
    )
    if row is None:
        raise NotFound(f"no dataset {dataset!r}", "list datasets with `tunelab datasets list`")
    return row


def get_dataset_version(session: Session, version_id: str) -> DatasetVersion:
    row = session.get(DatasetVersion, version_id)
    if row is None:
        raise NotFound(f"no dataset version {version_id!r}", "list a dataset's versions first")
    return row


def list_datasets(
    session: Session, *, limit: int = 100, offset: int = 0, tag: str | None = None
) -> tuple[list[Dataset], int]:
    """Datasets newest first, those carrying ``tag`` when given, one page and the total.

    The tag filter runs in Python, like the jobs' one: JSON containment is
    spelled differently by SQLite and PostgreSQL, and the lists are small.
    """
    rows = list(session.scalars(select(Dataset).order_by(Dataset.created_at.desc(), Dataset.id)))
    if tag:
        rows = [row for row in rows if tag in (row.tags or [])]
    return rows[offset : offset + max(1, limit)], len(rows)


def list_dataset_versions(session: Session, dataset: str) -> list[DatasetVersion]:
    """A dataset's versions, oldest first: its own rows, and its latest when another dataset owns it.

    A version id is a content hash, so the same records stored under two names
    are one row, owned by the dataset that stored them first; the second
    dataset points at it through ``latest_version_id`` and must still list it.
    """
    row = get_dataset(session, dataset)
    query = select(DatasetVersion).where(
        (DatasetVersion.dataset_id == row.id) | (DatasetVersion.id == row.latest_version_id)
    )
    return list(session.scalars(query.order_by(DatasetVersion.created_at, DatasetVersion.id)))


def delete_dataset(session: Session, dataset: str) -> list[str]:
    """Forget a dataset; returns the paths of the version rows deleted, so the caller can remove files.

    A version another dataset still points at (its latest) is handed over to
    that dataset instead of deleted, and its path is not returned: its files
    are still in use.
    """
    row = get_dataset(session, dataset)
    query = select(DatasetVersion).where(DatasetVersion.dataset_id == row.id)
    owned = list(session.scalars(query.order_by(DatasetVersion.created_at, DatasetVersion.id)))
    paths = []
    for version in owned:
        heir = session.scalars(
            select(Dataset).where(Dataset.latest_version_id == version.id, Dataset.id != row.id)
        ).first()
        if heir is not None:
            version.dataset_id = heir.id
        else:
            paths.append(version.path)
            session.delete(version)
    session.flush()
    session.delete(row)
    session.commit()
    return paths


def version_in_use(session: Session, version_id: str) -> bool:
    """Whether any row (a version, or a dataset's latest) still refers to ``version_id``."""
    if session.get(DatasetVersion, version_id) is not None:
        return True
    query = select(Dataset.id).where(Dataset.latest_version_id == version_id)
    return session.scalars(query).first() is not None


def add_model(
    session: Session,
    model_id: str,
    *,
    name: str = "",
    source: str = "local",
    location: str = "",
    info: dict[str, Any] | None = None,
    exist_ok: bool = True,
    commit: bool = True,
) -> ModelEntry:
    """Add a model to the collection (``model_id`` is its catalog name or Hub id)."""
    entry = session.get(ModelEntry, model_id)
    if entry is not None:
        if not exist_ok:
            raise Conflict(f"model {model_id!r} is already in the collection", "use another name")
        entry.location = location or entry.location
        entry.info = info or entry.info
    else:
        entry = ModelEntry(
            id=model_id, name=name or model_id, source=source, location=location, info=info or {}
        )
        session.add(entry)
    if commit:
        session.commit()
    else:
        session.flush()
    return entry


def tuned_model_id(base_model: str, name: str, job_id: str) -> str:
    """The collection id of a job's tuned model: ``ft:<base>:<name>:<job id>``, OpenAI's shape.

    People know a tuned model by the job's name and its base, not by a job id
    alone; the job id keeps the id unique when two jobs share a name. A base
    given as a folder shows as the folder's name, and ``:`` inside the parts
    becomes ``-`` so the id splits back into its four parts.
    """
    base = base_model.rstrip("/").rsplit("/", 1)[-1] if base_model.startswith(("/", ".", "~")) else base_model
    parts = [part.replace(":", "-") for part in (base or "model", name or "tuned", job_id)]
    return "ft:" + ":".join(parts)


def find_model(session: Session, name: str) -> ModelEntry | None:
    """The collection entry called ``name``: by id, else the newest entry with that display name."""
    entry = session.get(ModelEntry, name)
    if entry is not None:
        return entry
    query = select(ModelEntry).where(ModelEntry.name == name).order_by(ModelEntry.added_at.desc())
    return session.scalars(query).first()


def get_model(session: Session, model_id: str) -> ModelEntry:
    entry = session.get(ModelEntry, model_id)
    if entry is None:
        raise NotFound(
            f"model {model_id!r} is not in the collection", "add it with POST /api/models"
        )
    return entry


def list_models(session: Session) -> list[ModelEntry]:
    return list(session.scalars(select(ModelEntry).order_by(ModelEntry.added_at)))


def remove_model(session: Session, model_id: str) -> None:
    session.delete(get_model(session, model_id))
    session.commit()


def set_trust_remote_code(session: Session, model_id: str, allowed: bool) -> ModelEntry:
    """Admin-only switch: allow ``trust_remote_code`` for this one named model."""
    entry = get_model(session, model_id)
    entry.trust_remote_code = allowed
    session.commit()
    return entry
