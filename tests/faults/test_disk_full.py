"""A full disk, on a small tmpfs mounted over the runs folder: before a checkpoint and during its write.

Needs root and ``mount -t tmpfs`` (CI runs as root, as here); skipped with the
reason otherwise. Either way the engine reports ``disk_full`` (message and
hint: free N MB at PATH), the partial ``.tmp-checkpoint-*`` is removed, the job
is paused with that error and the worker lives on; once space is freed,
resume continues from the newest valid checkpoint and completes.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.faults.helpers import (
    HOOKS,
    assert_recovered,
    assert_worker_alive,
    create_job,
    engine_events,
    run_dir,
    wait_status,
    wait_until,
    worker_thread,
)

from tunelab.jobs import service

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


@pytest.fixture
def small_runs_disk(tunelab_home: Path) -> Iterator[Path]:
    """A 320 MB tmpfs as the home's runs/ folder (the preflight wants 256 MB free for an adapter run)."""
    runs = tunelab_home / "runs"
    runs.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320m", "tmpfs", str(runs)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield runs
    finally:
        subprocess.run(["umount", "-l", str(runs)], check=False)


def _fill(runs: Path, leave: int) -> Path:
    """Write a filler file so that only ``leave`` bytes stay free."""
    filler = runs / "filler.bin"
    free = shutil.disk_usage(runs).free
    with filler.open("wb") as fh:
        remaining = max(0, free - leave)
        block = b"\0" * (1024 * 1024)
        while remaining > 0:
            try:
                fh.write(block[: min(len(block), remaining)])
                fh.flush()
            except OSError:
                break
            remaining -= min(len(block), remaining)
    return filler


@pytest.mark.parametrize(("hook", "when"), [("step@3=20", "before"), ("checkpoint@4=20", "during")])
def test_disk_full_pauses_the_job_cleanly_and_resume_completes(
    factory, make_config, tiny_model_dir: Path, tunelab_home: Path, monkeypatch: pytest.MonkeyPatch,
    small_runs_disk: Path, hook: str, when: str,
) -> None:  # fmt: skip
    monkeypatch.setenv(HOOKS, hook)
    job_id = create_job(factory, make_config, tiny_model_dir, max_steps=6, save_steps=2)
    folder = run_dir(tunelab_home, job_id)
    with worker_thread(tunelab_home) as worker:
        marker = folder / f"hook-{hook.split('=')[0].replace('@', '-')}"
        wait_until(marker.exists, 180, f"the engine at {hook}")
        size = sum(p.stat().st_size for p in (folder / "checkpoints" / "checkpoint-2").rglob("*") if p.is_file())
        # before: less room than one checkpoint, so the check refuses checkpoint-4 before writing;
        # during: the weights of checkpoint-4 are written, the rest of it has no room (ENOSPC).
        filler = _fill(small_runs_disk, size // 2 if when == "before" else 8 * 1024)
        job = wait_status(factory, job_id, ("paused", "failed", "completed"), timeout=120)
        assert job.status == "paused", (job.status, job.error)
        error = job.error
        assert error["code"] == "disk_full", error
        assert "MB" in error["message"] and str(small_runs_disk) in error["message"]
        assert error["hint"].startswith("free ") and str(small_runs_disk) in error["hint"]
        assert not list((folder / "checkpoints").glob(".tmp-*"))  # the partial checkpoint is gone
        assert worker.thread.is_alive()  # type: ignore[attr-defined]
        filler.unlink()
        with factory() as session:
            service.resume_job(session, job_id)
        job = wait_status(factory, job_id, ("completed", "failed"))
        assert job.error is None  # the new attempt started clean
        assert_worker_alive(worker)
    assert_recovered(factory, job_id, status="completed", last_step=6, resumed_from=2)
    failed = [e for e in engine_events(factory, job_id) if e.get("type") == "failed"]
    assert len(failed) == 1 and failed[0]["data"]["code"] == "disk_full"
