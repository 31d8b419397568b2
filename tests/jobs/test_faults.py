"""Fault tests with real workers: kill -9 mid-training, three workers on PostgreSQL, store outages."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.jobs.helpers import wait_for_job

from tunelab.jobs import service
from tunelab.store.db import session_factory
from tunelab.store.models import Job, JobEvent

FAST = {"max_rows": 40, "max_length": 96, "batch_size": 2, "output": {"evaluate": False}}


def _start_worker(*args: str, url: str | None = None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tunelab.jobs.worker", "--lease-s", "5", "--tick-s", "0.3", *args]
    if url:
        command += ["--database-url", url]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_kill_9_worker_then_new_worker_resumes_from_last_checkpoint(
    tunelab_home: Path, make_config, tiny_model_dir: Path
) -> None:
    factory = session_factory(f"sqlite:///{tunelab_home / 'tunelab.db'}")
    config = make_config(model=str(tiny_model_dir), max_steps=24, save_steps=3, **FAST)
    with factory() as session:
        job_id = service.create_job(session, config).id
    first = _start_worker()
    try:
        wait_for_job(factory, job_id, lambda j: (j.global_step or 0) >= 7, timeout=180)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
    second = _start_worker("--max-jobs", "1", "--idle-exit-s", "30")
    try:
        job = wait_for_job(factory, job_id, lambda j: j.status in ("completed", "failed"), timeout=180)
        assert second.wait(timeout=60) == 0
    finally:
        second.kill()
    assert job.status == "completed", job.error
    # The engine got SIGTERM from its dying worker, checkpointed and exited 75: no attempt used.
    assert job.attempts == 1
    with factory() as session:
        steps = [m.step for m in service.list_metrics(session, job_id)]
        assert steps == list(range(1, 25))  # no gap, no duplicate
        events = list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)))
    statuses = [e.data["status"] for e in events if e.type == "status"]
    assert statuses == ["created", "queued", "running", "queued", "running", "completed"]
    checkpoint_steps: list[int] = []
    resumed_at = None
    for event in events:
        if event.type != "event":
            continue
        if event.data["type"] == "checkpoint_saved":
            checkpoint_steps.append(event.data["data"]["step"])
        if event.data["type"] == "resumed":
            resumed_at = event.data["data"]["step"]
            break
    assert resumed_at is not None and resumed_at >= 6
    assert resumed_at == max(checkpoint_steps)  # the last checkpoint saved before the crash


@pytest.mark.slow
@pytest.mark.postgres
def test_three_workers_thirty_jobs_each_run_exactly_once(
    postgres_url: str, make_config, tiny_model_dir: Path
) -> None:
    """30 real one-step trainings of the tiny model, three worker processes on PostgreSQL."""
    from tunelab.store.db import init_db
    from tunelab.store.testing import clear_tables

    init_db(postgres_url)
    clear_tables(postgres_url)
    factory = session_factory(postgres_url)
    hyper = {**FAST, "max_rows": 8, "max_steps": 1, "save_steps": 0}
    with factory() as session:
        ids = {service.create_job(session, make_config(model=str(tiny_model_dir), **hyper)).id for _ in range(30)}
    workers = [
        _start_worker("--worker-id", f"pg-worker-{i}", "--idle-exit-s", "3", url=postgres_url)
        for i in range(3)
    ]
    try:
        for proc in workers:
            assert proc.wait(timeout=900) == 0
    finally:
        for proc in workers:
            proc.kill()
    with factory() as session:
        jobs = list(session.scalars(select(Job).where(Job.id.in_(ids))))
        starts = Counter(
            e.job_id
            for e in session.scalars(select(JobEvent).where(JobEvent.type == "status"))
            if e.data["status"] == "running"
        )
        ran_by = Counter(
            e.data["worker_id"]
            for e in session.scalars(select(JobEvent).where(JobEvent.type == "status"))
            if e.data["status"] == "running"
        )
    assert {j.status for j in jobs} == {"completed"}, [j.error for j in jobs if j.error]
    assert all(j.attempts == 1 for j in jobs)
    assert set(starts) == ids and set(starts.values()) == {1}  # each job started exactly once
    assert set(ran_by) == {"pg-worker-0", "pg-worker-1", "pg-worker-2"}
    assert sum(ran_by.values()) == 30


def _store_outage(folder: Path, url: str, settings: object) -> Path:
    """Take the database away from the worker: its folder renamed, the worker's pooled connections closed.

    New connections then fail with SQLite's own ``unable to open database file``
    (an OperationalError) until ``_store_back`` renames the folder back.
    """
    from tunelab.store.db import get_engine

    away = folder.with_name(folder.name + ".away")
    folder.rename(away)
    get_engine(url, "worker", settings).dispose()  # type: ignore[arg-type]
    return away


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_worker_survives_store_outages_and_completes_the_job(
    tunelab_home: Path, make_config, tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store vanishes before the first tick and again mid-training; the worker retries and finishes."""
    import logging
    import threading

    from tunelab.jobs.worker import Worker
    from tunelab.settings import Settings

    folder = tunelab_home / "store"
    url = f"sqlite:///{folder / 'tunelab.db'}"
    settings = Settings(home=tunelab_home, database_url=url, worker_backoff_max_s=1.0)
    factory = session_factory(url)
    with factory() as session:
        job_id = service.create_job(session, make_config(model=str(tiny_model_dir), max_steps=10, **FAST)).id
    worker = Worker(session_factory(url, role="worker", settings=settings), "flaky-store-worker", settings,
                    tick_s=0.2, poll_s=0.2, sample_s=1.0, grace_s=20, lease_s=10)  # fmt: skip
    caplog.set_level(logging.WARNING, logger="tunelab.worker")
    away = _store_outage(folder, url, settings)
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while worker.health(60)["consecutive_errors"] < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert worker.health(60)["consecutive_errors"] >= 3 and thread.is_alive()
        assert "unable to open database file" in (worker.last_error or "")
        away.rename(folder)  # the store is back
        wait_for_job(factory, job_id, lambda j: (j.global_step or 0) >= 2, timeout=240)
        away = _store_outage(folder, url, settings)  # again, while the engine trains
        time.sleep(2.0)
        away.rename(folder)
        job = wait_for_job(factory, job_id, lambda j: j.status in ("completed", "failed"), timeout=240)
        assert thread.is_alive() and worker.health(60)["problem"] is None
    finally:
        if away.exists():
            away.rename(folder)
        worker.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert job.status == "completed", job.error
    assert job.attempts == 1  # the outages cost no attempt
    with factory() as session:
        assert [m.step for m in service.list_metrics(session, job_id)] == list(range(1, 11))
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert any(job_id in line and "tick failed" in line for line in retries), retries  # the supervisor's tick
    assert any("flaky-store-worker" in line for line in retries), retries  # the worker loop's
