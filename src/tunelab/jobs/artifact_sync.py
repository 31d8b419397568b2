"""A run directory mirrored into the shared artifact storage, so any worker can resume it.

With ``TUNELAB_ARTIFACTS_URL`` set (``tunelab.storage``), the run trains on
local disk as always and ``RunSync`` copies what must outlive this machine:

- ``restore()`` (before the engine starts): when the storage holds a newer
  complete checkpoint than the local run directory (the job ran on another
  worker), it is downloaded into ``checkpoints/``, and the engine resumes from
  it as from its own (its manifest's checksums are verified on resume).
- a background thread uploads each checkpoint once the engine has finished it
  (``manifest.json`` written last), while the engine trains on.
- ``flush(output=...)`` (after the engine exits, before the job's status
  changes) uploads what is left and, for a completed job, ``output/``.

Keys: ``runs/<job id>/checkpoints/checkpoint-<step>/...`` and
``runs/<job id>/output/...``. Every upload and download becomes an engine-style
event (``checkpoint_uploaded``, ``checkpoint_downloaded``, ``output_uploaded``,
``artifact_upload_failed``) handed to the supervisor through ``drain_notes``.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from tunelab.settings import Settings
from tunelab.storage import ArtifactStorage, StorageError, open_storage
from tunelab.training.checkpoint import MANIFEST, PREFIX, list_checkpoints, verify_checkpoint

log = logging.getLogger("tunelab.worker")


def _step(name: str) -> int | None:
    tail = name[len(PREFIX) :] if name.startswith(PREFIX) else ""
    return int(tail) if tail.isdigit() else None


class RunSync:
    """Mirrors one job's checkpoints and output between its run directory and the storage."""

    def __init__(
        self, storage: ArtifactStorage, job_id: str, run_dir: Path, *, poll_s: float = 1.0
    ) -> None:
        self.storage, self.job_id, self.run_dir, self.poll_s = storage, job_id, run_dir, poll_s
        self.prefix = f"runs/{job_id}"
        self.uploaded: set[int] = set()
        self._notes: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def open(cls, settings: Settings, job_id: str, run_dir: Path) -> RunSync | None:
        storage = open_storage(settings)
        return None if storage is None else cls(storage, job_id, run_dir)

    # -- notes for the job's event stream ----------------------------------------------------
    def _note(self, kind: str, message: str, **data: Any) -> None:
        with self._lock:
            self._notes.append(
                {"time": time.time(), "type": kind, "message": message, "data": data}
            )

    def drain_notes(self) -> list[dict[str, Any]]:
        with self._lock:
            notes, self._notes = self._notes, []
        return notes

    # -- download ------------------------------------------------------------------------------
    def remote_steps(self) -> list[int]:
        """Steps of the checkpoints stored whole (manifest present), oldest first."""
        names = self.storage.children(f"{self.prefix}/checkpoints")
        steps = sorted(step for name in names if (step := _step(name)) is not None)
        return [
            step
            for step in steps
            if self.storage.complete(f"{self.prefix}/checkpoints/{PREFIX}{step}")
        ]

    def restore(self) -> int | None:
        """Download the newest stored checkpoint if it is newer than every valid local one; its step or None."""
        folder = self.run_dir / "checkpoints"
        local = [
            s
            for p in list_checkpoints(folder)
            if (s := _step(p.name)) is not None and verify_checkpoint(p) is None
        ]
        remote = self.remote_steps()
        self.uploaded.update(step for step in remote if step in local)
        if not remote or (local and max(local) >= remote[-1]):
            return None
        step = remote[-1]
        started = time.monotonic()
        size = self.storage.get_dir(
            f"{self.prefix}/checkpoints/{PREFIX}{step}", folder / f"{PREFIX}{step}"
        )
        self.uploaded.add(step)
        self._note("checkpoint_downloaded",
                   f"downloaded checkpoint-{step} ({size / 1e6:.1f} MB) from {self.storage.describe()} "
                   f"in {time.monotonic() - started:.1f} s: the job resumes from it", step=step, bytes=size)  # fmt: skip
        return step

    # -- upload --------------------------------------------------------------------------------
    def start(self) -> None:
        """Upload finished checkpoints in the background until ``flush``."""
        self._thread = threading.Thread(
            target=self._loop, name=f"artifacts-{self.job_id}", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.upload_checkpoints()

    def upload_checkpoints(self) -> list[int]:
        """Upload every finished checkpoint not uploaded yet, oldest first; returns their steps."""
        done = []
        for path in list_checkpoints(self.run_dir / "checkpoints"):
            step = _step(path.name)
            if step is None or step in self.uploaded or not (path / MANIFEST).exists():
                continue
            started = time.monotonic()
            try:
                size = self.storage.put_dir(path, f"{self.prefix}/checkpoints/{path.name}")
            except FileNotFoundError:
                continue  # the engine removed it (save_total_limit) while we copied
            except StorageError as error:
                self._failed(f"checkpoint-{step}", error)
                return done
            self.uploaded.add(step)
            done.append(step)
            self._note("checkpoint_uploaded", f"uploaded checkpoint-{step} ({size / 1e6:.1f} MB) to "
                       f"{self.storage.describe()} in {time.monotonic() - started:.1f} s", step=step, bytes=size)  # fmt: skip
        return done

    def _failed(self, what: str, error: StorageError) -> None:
        log.warning("job %s: could not upload %s: %s", self.job_id, what, error.message)
        self._note("artifact_upload_failed", f"could not upload {what} to {self.storage.describe()}: "
                   f"{error.message}; it stays in {self.run_dir}, and the next upload tries again", what=what)  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def flush(self, *, output: bool) -> None:
        """Stop the background thread, upload the checkpoints left and (``output``) the output folder."""
        self.stop()
        self.upload_checkpoints()
        folder = self.run_dir / "output"
        if not output or not folder.is_dir():
            return
        started = time.monotonic()
        try:
            self.storage.delete(f"{self.prefix}/output")
            size = self.storage.put_dir(folder, f"{self.prefix}/output")
        except StorageError as error:
            self._failed("output", error)
            return
        self._note("output_uploaded", f"uploaded output/ ({size / 1e6:.1f} MB) to {self.storage.describe()} "
                   f"in {time.monotonic() - started:.1f} s", bytes=size)  # fmt: skip
