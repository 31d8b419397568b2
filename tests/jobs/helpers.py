"""Helpers shared by the job tests that drive real workers."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from tunelab.store.models import Job


def wait_for_job(
    factory: sessionmaker[Session], job_id: str, check: Callable[[Job], bool], timeout: float = 120
) -> Job:
    """Poll the store until ``check(job)`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with factory() as session:
            job = session.get(Job, job_id)
            if check(job):
                return job
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting on {job_id}")
