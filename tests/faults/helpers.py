"""Helpers of the fault tests: real workers and engines on the tiny model, and what every case must end with.

Each case ends with the job completed or cleanly paused, resumed from the
newest valid checkpoint, its metric steps stored once each without a gap, and
the worker alive (``assert_recovered`` and ``assert_worker_alive``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests.jobs.helpers import wait_for_job

from tunelab.jobs import service
from tunelab.jobs.worker import Worker
from tunelab.settings import Settings
from tunelab.store.db import session_factory
from tunelab.store.models import Job, JobEvent

FAST = {"max_rows": 40, "max_length": 96, "batch_size": 2, "output": {"evaluate": False}}
HOOKS = "TUNELAB_TEST_HOOKS"


def create_job(factory: sessionmaker[Session], make_config: Callable[..., dict[str, Any]], model: Path,
               **hyper: Any) -> str:  # fmt: skip
    with factory() as session:
        return service.create_job(session, make_config(model=str(model), **{**FAST, **hyper})).id


def run_dir(home: Path, job_id: str) -> Path:
    return home / "runs" / job_id


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def engine_pid(folder: Path, timeout: float = 120) -> int:
    """The pid of the engine training in ``folder`` (``python -m tunelab.training FOLDER``)."""
    found: list[int] = []

    def look() -> bool:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if "tunelab.training" in cmdline and str(folder.resolve()) in cmdline:
                found.append(proc.info["pid"])
                return True
        return False

    wait_until(look, timeout, f"an engine in {folder}")
    return found[0]


def kill_engine_at(folder: Path, marker: str, timeout: float = 180) -> None:
    """Wait for the test hook's marker file, then kill -9 the engine while it is held there."""
    wait_until(lambda: (folder / marker).exists(), timeout, f"{marker} in {folder}")
    os.kill(engine_pid(folder), signal.SIGKILL)


@contextmanager
def worker_thread(home: Path, *, no_progress_s: float = 30.0, url: str | None = None,
                  worker_id: str = "fault-worker", **kw: Any) -> Iterator[Worker]:  # fmt: skip
    """A real Worker (``run_forever``) in a thread, as ``tunelab serve`` runs it; stopped at the end."""
    url = url or f"sqlite:///{home / 'tunelab.db'}"
    settings = Settings(home=home, database_url=url, stop_no_progress_s=no_progress_s, worker_backoff_max_s=1.0)
    options = {"tick_s": 0.2, "poll_s": 0.2, "sample_s": 2.0, "lease_s": 10.0, "reconcile_every_s": 2.0, **kw}
    worker = Worker(session_factory(url, role="worker", settings=settings), worker_id, settings, **options)
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    worker.thread = thread  # type: ignore[attr-defined]
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=120)


def assert_worker_alive(worker: Worker) -> None:
    assert worker.thread.is_alive(), "the worker thread died"  # type: ignore[attr-defined]
    assert worker.health(60)["problem"] is None, worker.health(60)


def engine_events(factory: sessionmaker[Session], job_id: str) -> list[dict[str, Any]]:
    """The engine's and the supervisor's events (``event`` rows' data), oldest first."""
    with factory() as session:
        rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "event")
                               .order_by(JobEvent.id))  # fmt: skip
        return [dict(row.data) for row in rows]


def statuses(factory: sessionmaker[Session], job_id: str) -> list[str]:
    with factory() as session:
        rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "status")
                               .order_by(JobEvent.id))  # fmt: skip
        return [row.data["status"] for row in rows]


def wait_status(factory: sessionmaker[Session], job_id: str, wanted: tuple[str, ...], timeout: float = 240) -> Job:
    return wait_for_job(factory, job_id, lambda j: j.status in wanted, timeout=timeout)


def assert_recovered(factory: sessionmaker[Session], job_id: str, *, status: str, last_step: int,
                     resumed_from: int | None) -> Job:  # fmt: skip
    """The job ended ``status``; metrics 1..last_step once each; the last resume used ``resumed_from``.

    ``resumed_from`` is also checked to be the newest checkpoint the engine
    saved before that resume (and not one it skipped as damaged).
    """
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.status == status, (job.status, job.error)
        steps = [m.step for m in service.list_metrics(session, job_id)]
    assert steps == list(range(1, last_step + 1)), steps  # no gap, no duplicate
    events = engine_events(factory, job_id)
    resumes = [i for i, e in enumerate(events) if e.get("type") == "resumed"]
    if resumed_from is None:
        assert not resumes, [events[i] for i in resumes]
        return job
    assert resumes, "the job never resumed"
    last = resumes[-1]
    assert events[last]["data"]["step"] == resumed_from, events[last]
    skipped = {e["data"]["checkpoint"] for e in events[:last] if e.get("type") == "checkpoint_skipped"}
    saved = [e["data"]["step"] for e in events[:last] if e.get("type") == "checkpoint_saved"
             and f"checkpoint-{e['data']['step']}" not in skipped]  # fmt: skip
    assert saved and resumed_from == max(saved), (resumed_from, saved, skipped)
    return job
