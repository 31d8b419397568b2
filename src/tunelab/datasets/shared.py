"""Dataset versions in the shared artifact storage, so a worker on another machine trains on them.

With ``TUNELAB_ARTIFACTS_URL`` set (``tunelab.storage``), the registry
(``jobs/datasets.py``) writes every version it stores to the storage as well,
under its content address ``datasets/<version id>/`` (``records.jsonl``, then
``manifest.json``: a stored version counts only once its manifest is there),
and a machine whose home lacks a version stages it into its own
``<home>/datasets/<version id>/`` before anything reads it. A staged copy is
checked against its content address (``versions.verify_folder``: the records
must hash to the version id), so a damaged or substituted object never reaches
the engine; it is downloaded beside the datasets folder and renamed into place
only once it checks out. Without a URL nothing here runs: one machine's home is
the only copy, as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

from tunelab.datasets.versions import (
    MANIFEST,
    RECORDS,
    DatasetVersion,
    datasets_dir,
    load_version,
    verify_folder,
)
from tunelab.errors import DatasetError, NotFound
from tunelab.storage import ArtifactStorage, StorageError

log = logging.getLogger("tunelab.datasets")
#: Where versions sit in the storage, beside ``runs/`` (``jobs/artifact_sync.py``).
PREFIX = "datasets"
#: Downloads land here first, one level below the versions, so a half-staged copy is never listed.
STAGING = ".staging"
REIMPORT = (
    "import the source file again on the studio (`tunelab datasets import FILE` or POST /api/datasets): "
    "the same content gets the same version id, and storing it uploads a good copy"
)


def key(version_id: str) -> str:
    """The version's folder in the storage: named by its content hash, so writing it twice changes nothing."""
    return f"{PREFIX}/{version_id}"


def publish(version: DatasetVersion, storage: ArtifactStorage) -> int:
    """Write the version's files to the storage (the manifest last); returns bytes sent.

    Called whenever a version is stored, also when the same content is stored
    again: an upload replaces an object whole, so writing a good copy over a
    damaged one is how a damaged object is repaired.
    """
    started = time.monotonic()
    sent = storage.put_dir(version.path, key(version.version_id))
    log.info("uploaded dataset version %s (%.2f MB) to %s in %.1f s", version.version_id,
             sent / 1e6, storage.describe(), time.monotonic() - started)  # fmt: skip
    return sent


def published(version_id: str, storage: ArtifactStorage) -> bool:
    """Whether the storage holds the version whole (its manifest is there): one lookup."""
    return storage.complete(key(version_id))


def unpublish(version_id: str, storage: ArtifactStorage) -> None:
    """Remove a version no dataset uses any more from the storage.

    The rows are gone by then (rows first, then files), so a storage that
    fails here leaves an object nothing lists; it is logged, not raised.
    """
    try:
        storage.delete(key(version_id))
    except StorageError as error:
        log.warning("could not remove dataset version %s from %s: %s", version_id, storage.describe(),
                    error.message)  # fmt: skip


def stage(version_id: str, home: str | Path, storage: ArtifactStorage) -> DatasetVersion:
    """This home's copy of ``version_id``: the local one, else downloaded from the storage and verified.

    Raises ``NotFound`` when the storage does not hold the version whole, and
    ``DatasetError`` (``dataset_corrupt``) when its copy does not hash to its
    id; either way nothing is left in the datasets folder.
    """
    root = datasets_dir(home)
    final = root / version_id
    if (final / MANIFEST).is_file() and (final / RECORDS).is_file():
        return load_version(version_id, home)
    where = f"{storage.describe()}/{key(version_id)}"
    if "/" in version_id or version_id.startswith(".") or not published(version_id, storage):
        raise NotFound(
            f"dataset version {version_id!r} is neither in this machine's datasets folder ({root}) "
            f"nor stored whole in the shared storage ({where})",
            REIMPORT,
        )
    staging = root / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / f"{version_id}-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    try:
        size = storage.get_dir(key(version_id), tmp)
        problem = verify_folder(tmp, version_id)
        if problem is not None:
            raise DatasetError(
                f"the shared copy of dataset version {version_id} ({where}) is damaged: {problem}",
                REIMPORT,
                code="dataset_corrupt",
            )
        if final.exists():  # a damaged local folder (a manifest without records) gives way
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:  # another process staged the same version first
            if not (final / RECORDS).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):  # empty unless another stage is under way
            staging.rmdir()
    log.info("staged dataset version %s (%.2f MB) from %s in %.1f s", version_id, size / 1e6,
             storage.describe(), time.monotonic() - started)  # fmt: skip
    return load_version(version_id, home)
