"""Folders in and out of an fsspec location, each complete or not there at all.

A folder is uploaded file by file with its ``manifest.json`` (the checkpoint's
list of sizes and sha256) last, and a folder counts as present remotely only
once its manifest is there, so a reader never takes a half-uploaded checkpoint.
A download lands in a temporary sibling that is renamed into place at the end,
so a local folder is never half there either; the engine verifies the
manifest's checksums before it resumes from it.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError
from tunelab.settings import Settings

#: The file written last and read first: a folder is complete once it is there.
MARKER = "manifest.json"


class StorageError(TunelabError):
    """The artifact store refused or could not be reached."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message, hint or "check TUNELAB_ARTIFACTS_URL, its endpoint and credentials",
                         code="storage_unavailable")  # fmt: skip


class ArtifactStorage:
    """A prefix in one fsspec filesystem; keys are ``/``-separated paths under it."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        from fsspec.core import url_to_fs

        self.url = url.rstrip("/")
        try:
            self.fs, self.root = url_to_fs(self.url, **(options or {}))
        except (ImportError, ValueError) as error:
            raise StorageError(f"cannot open the artifact store {url!r}: {error}",
                               "install the backend (pip install 'tunelab[s3]' for s3://) or fix the URL") from None  # fmt: skip
        self.root = self.root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self._local = "file" in protocols

    def describe(self) -> str:
        return self.url

    def path(self, key: str) -> str:
        return f"{self.root}/{key.strip('/')}" if key.strip("/") else self.root

    def _fresh(self) -> None:
        with contextlib.suppress(Exception):
            self.fs.invalidate_cache()

    def exists(self, key: str) -> bool:
        self._fresh()
        return bool(self._call(self.fs.exists, self.path(key)))

    def children(self, key: str) -> list[str]:
        """Names directly under ``key`` (folders and files); empty when there is nothing."""
        self._fresh()
        try:
            entries = self._call(self.fs.ls, self.path(key), detail=False)
        except FileNotFoundError:
            return []
        return sorted({str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries})

    def complete(self, key: str) -> bool:
        """The folder at ``key`` was uploaded whole (its manifest is there)."""
        return self.exists(f"{key}/{MARKER}")

    def put_file(self, local: Path, key: str) -> None:
        """Upload one file; a reader sees the old object or the new one, never half of either.

        Object stores replace an object whole; on a folder (a shared mount) the
        copy goes to a temporary sibling that is renamed over the target.
        """
        target = self.path(key)
        if not self._local:
            self._call(self.fs.put_file, str(local), target)
            return
        parent = self.fs._parent(target)
        self.fs.makedirs(parent, exist_ok=True)  # object stores have no folders; a filesystem needs them
        tmp = f"{parent}/.{target.rsplit('/', 1)[-1]}.{uuid.uuid4().hex[:8]}.part"
        try:
            self._call(self.fs.put_file, str(local), tmp)
            self._call(self.fs.mv, tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(tmp)

    def get_file(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            self._call(self.fs.get_file, self.path(key), str(tmp))
            tmp.replace(local)
        finally:
            tmp.unlink(missing_ok=True)

    def put_dir(self, local: Path, key: str) -> int:
        """Upload every file under ``local`` to ``key``, the manifest last; returns bytes sent."""
        files = sorted(p for p in local.rglob("*") if p.is_file())
        files.sort(key=lambda p: p.relative_to(local).as_posix() == MARKER)
        sent = 0
        for file in files:
            self.put_file(file, f"{key}/{file.relative_to(local).as_posix()}")
            sent += file.stat().st_size
        return sent

    def get_dir(self, key: str, local: Path) -> int:
        """Download the folder at ``key`` into ``local`` (replaced whole at the end); returns bytes."""
        self._fresh()
        base = self.path(key)
        try:
            found = self._call(self.fs.find, base, detail=True)
        except FileNotFoundError:
            found = {}
        if not found:
            raise StorageError(
                f"nothing stored at {self.url}/{key}", "check that the upload finished"
            )
        tmp = local.with_name(f".tmp-download-{local.name}-{uuid.uuid4().hex[:8]}")
        received = 0
        try:
            for remote, info in found.items():
                relative = str(remote)[len(base) :].lstrip("/")
                target = tmp / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                self._call(self.fs.get_file, remote, str(target))
                received += int(info.get("size") or 0)
            if local.exists():
                shutil.rmtree(local)
            tmp.replace(local)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return received

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._call(self.fs.rm, self.path(key), recursive=True)

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except FileNotFoundError:
            raise
        except (OSError, PermissionError) as error:
            raise StorageError(f"artifact store {self.url}: {error}") from error
        except Exception as error:  # botocore and other backends raise their own types
            if type(error).__module__.split(".")[0] in (
                "botocore",
                "aiobotocore",
                "s3fs",
                "gcsfs",
                "adlfs",
            ):
                raise StorageError(f"artifact store {self.url}: {error}") from error
            raise


def storage_options(settings: Settings) -> dict[str, Any]:
    """fsspec options from the settings: the endpoint of an S3-compatible store, then any extra options."""
    options: dict[str, Any] = {}
    if settings.artifacts_endpoint_url and settings.artifacts_url.startswith(("s3://", "s3a://")):
        options["endpoint_url"] = settings.artifacts_endpoint_url
    options.update(settings.artifacts_options)
    return options


def open_storage(settings: Settings) -> ArtifactStorage | None:
    """The installation's shared storage, or None when artifacts stay local (the default)."""
    if not settings.artifacts_url:
        return None
    url = settings.artifacts_url
    if "://" not in url:  # a plain folder, e.g. a mount every machine shares
        Path(url).expanduser().mkdir(parents=True, exist_ok=True)
        url = str(Path(url).expanduser().resolve())
    return ArtifactStorage(url, storage_options(settings))
