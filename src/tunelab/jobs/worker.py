"""The worker: claim a job, supervise its engine, repeat; reconcile lost jobs on the way.

``Worker(session_factory, worker_id, settings).run_forever()`` is what
``tunelab worker`` and each embedded worker of ``tunelab serve`` run;
``run_once()`` handles at most one job and returns (tests use it). ``stop()``
asks a running engine to checkpoint and gives its job back to the queue, so a
restarted service continues where it stopped. A job on a remote provider
(``jobs.provider`` not ``local``) has no engine here: ``supervisor_for`` gives
it a ``tunelab.providers.follow.RemoteSupervisor``, which follows the remote
job instead.

The loop never dies of an error: a failed iteration (the store locked, full,
unreachable, out of pooled connections; or a bug) is logged and retried after a
bounded exponential backoff (0.5 s doubling to ``worker_backoff_max_s``), so
only ``stop()`` (SIGTERM/SIGINT) ends ``run_forever``. Every iteration, and
every supervisor tick while a job runs, is a heartbeat (``last_tick_at``);
``health()`` turns it into what ``/api/health`` reports. The worker also
keeps its row in the store's ``workers`` table (its GPUs, CPUs, RAM and current
job, ``tunelab.jobs.resources``), renewed at most every ``advertise_s`` with
the heartbeat; it claims only jobs that fit those resources and, on its
reconcile pass, marks queued jobs no live worker can run as waiting for
resources.

Run as a process: ``python -m tunelab.jobs.worker [--worker-id ID]``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from tunelab.jobs.queue import claim_next_job
from tunelab.jobs.reconcile import make_worker_id, reconcile, requeue_expired
from tunelab.jobs.resources import Resources, advertise, detect_resources, report_waiting, retire
from tunelab.providers.follow import supervisor_for
from tunelab.settings import Settings, get_settings
from tunelab.store.models import utcnow
from tunelab.store.retry import Backoff, describe, is_transient

log = logging.getLogger("tunelab.worker")


class Worker:
    """Claims queued jobs one at a time and runs each to its end."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        worker_id: str | None = None,
        settings: Settings | None = None,
        *,
        lease_s: float = 30.0,
        poll_s: float = 1.0,
        tick_s: float = 1.0,
        sample_s: float = 5.0,
        grace_s: float = 30.0,
        reconcile_every_s: float = 10.0,
        resources: Resources | None = None,
        advertise_s: float = 5.0,
    ) -> None:
        self.factory = session_factory
        self.worker_id = worker_id or make_worker_id()
        self.settings = settings or get_settings()
        self.lease_s, self.poll_s, self.tick_s = lease_s, poll_s, tick_s
        self.sample_s, self.grace_s = sample_s, grace_s
        self.reconcile_every_s = reconcile_every_s
        self._stop = threading.Event()
        self._last_reconcile = 0.0
        self.current_job: str | None = None
        self.running = False  # inside run_forever
        self.last_tick: float | None = None  # time.monotonic() of the latest heartbeat
        self.last_tick_at: datetime | None = None
        self.last_error: str | None = None
        self._backoff = Backoff(0.5, self.settings.worker_backoff_max_s)
        self._resources = resources
        self.advertise_s = advertise_s
        self._advertised = 0.0

    @property
    def resources(self) -> Resources:
        """What this worker advertises and claims by; detected on first use unless given."""
        if self._resources is None:
            self._resources = detect_resources()
        return self._resources

    def beat(self) -> None:
        """Record that the loop is alive (each iteration, and each tick of a running job)."""
        self.last_tick, self.last_tick_at = time.monotonic(), utcnow()
        if time.monotonic() - self._advertised >= self.advertise_s:
            self.advertise()

    def advertise(self) -> None:
        """Renew this worker's row (resources, heartbeat, current job); a failure is logged, never raised."""
        self._advertised = time.monotonic()
        try:
            with self.factory() as session:
                advertise(session, self.worker_id, self.resources, self.current_job)
        except Exception as error:
            log.warning("worker %s: could not renew its row in the store: %s", self.worker_id, describe(error))

    def health(self, stale_s: float) -> dict[str, Any]:
        """This worker as ``/api/health`` shows it; ``problem`` is None while it is healthy."""
        since = None if self.last_tick is None else round(time.monotonic() - self.last_tick, 1)
        problem = None
        if not self.running:
            problem = f"worker {self.worker_id} is not running"
        elif since is not None and since > stale_s:
            problem = f"worker {self.worker_id} has not ticked for {since:.0f} s (limit {stale_s:g} s)"
        return {
            "worker_id": self.worker_id,
            "alive": self.running,
            "current_job": self.current_job,
            "last_heartbeat": self.last_tick_at.isoformat() if self.last_tick_at else None,
            "seconds_since_heartbeat": since,
            "consecutive_errors": self._backoff.failures,
            "last_error": self.last_error,
            "problem": problem,
        }

    def stop(self) -> None:
        """Finish soon: a running job is checkpointed and requeued, then run_forever returns."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def reconcile(self, startup: bool = False) -> list[tuple[str, str]]:
        """Requeue or fail running jobs whose worker is gone (all of them at start-up)."""
        with self.factory() as session:
            limit = self.settings.stop_no_progress_s
            changed = reconcile(session, limit) if startup else requeue_expired(session, limit)
            waiting = report_waiting(session, self.settings.worker_stale_s)
        for job_id, status in changed:
            log.warning("worker %s: lost job %s -> %s", self.worker_id, job_id, status)
        for job_id, reason in waiting:
            log.info("worker %s: job %s %s", self.worker_id, job_id, reason or "can run again")
        self._last_reconcile = time.monotonic()
        return changed

    def run_once(self) -> str | None:
        """Claim and run at most one job; returns its id, or None when the queue was empty."""
        if time.monotonic() - self._advertised >= self.advertise_s:
            self.advertise()
        if time.monotonic() - self._last_reconcile >= self.reconcile_every_s:
            self.reconcile()
        job = claim_next_job(self.factory, self.worker_id, lease_s=self.lease_s, resources=self.resources)
        if job is None:
            return None
        self.current_job = job.id
        self.advertise()
        log.info("worker %s: running %s (attempt %s)", self.worker_id, job.id, job.attempts)
        try:
            status = supervisor_for(  # the engine for provider `local`, else the remote job's follower
                job.provider,
                self.factory,
                job.id,
                self.worker_id,
                self.settings,
                lease_s=self.lease_s,
                tick_s=self.tick_s,
                sample_s=self.sample_s,
                grace_s=self.grace_s,
                should_stop=self._stop.is_set,
                on_tick=self.beat,
            ).run()
            log.info("worker %s: %s ended %s", self.worker_id, job.id, status)
        finally:
            self.current_job = None
        return job.id

    def run_forever(self, *, max_jobs: int | None = None, idle_exit_s: float | None = None) -> int:
        """Loop until ``stop()``; optional limits for tests. Returns the number of jobs run.

        No exception ends the loop: each failed iteration is logged and retried
        after the backoff (see the module docstring).
        """
        done, idle_since, started_up = 0, time.monotonic(), False
        self.running = True
        try:
            while not self._stop.is_set():
                self.beat()
                try:
                    if not started_up:
                        self.reconcile(startup=True)
                        started_up = True
                    job_id = self.run_once()
                except Exception as error:
                    self._failed(error)
                    continue
                self._backoff.succeeded()
                self.last_error = None
                if job_id is None:
                    if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                        break
                    self._stop.wait(self.poll_s)
                    continue
                done, idle_since = done + 1, time.monotonic()
                if max_jobs is not None and done >= max_jobs:
                    break
        finally:
            self.running = False
            self._retire()
        return done

    def _retire(self) -> None:
        try:
            with self.factory() as session:
                retire(session, self.worker_id)
        except Exception as error:
            log.warning("worker %s: could not mark itself stopped: %s", self.worker_id, describe(error))

    def _failed(self, error: Exception) -> None:
        """Log a failed iteration and wait out the backoff (``stop()`` cuts the wait short)."""
        wait_s = self._backoff.failed()
        self.last_error = describe(error)
        if is_transient(error):
            log.warning("worker %s: %s; retrying in %.1f s", self.worker_id, self.last_error, wait_s)
        else:
            log.exception("worker %s: loop failed; retrying in %.1f s", self.worker_id, wait_s, exc_info=error)
        self._stop.wait(wait_s)


def health_report(session: Session, workers: list[Worker], stale_s: float) -> dict[str, Any]:
    """The service's health: the store answers, each embedded worker's loop, each job's heartbeat.

    ``workers`` are this process's embedded workers (``tunelab serve``); one
    that is gone or has not ticked for ``stale_s`` makes the report unhealthy
    (``problems``). Workers in other processes are seen through the store: the
    heartbeat and lease of every running job. Raises the store's error when the
    store does not answer.
    """
    from sqlalchemy import select, text

    from tunelab.jobs.states import JobStatus
    from tunelab.store.models import Job

    session.execute(text("SELECT 1"))
    embedded = [worker.health(stale_s) for worker in workers]
    running = session.execute(
        select(Job.id, Job.worker_id, Job.heartbeat_at, Job.lease_expires_at)
        .where(Job.status == JobStatus.RUNNING.value)
        .order_by(Job.id)
    ).all()
    jobs = [
        {
            "job_id": job_id,
            "worker_id": worker_id,
            "last_heartbeat": heartbeat.isoformat() if heartbeat else None,
            "lease_expires_at": lease.isoformat() if lease else None,
        }
        for job_id, worker_id, heartbeat, lease in running
    ]
    problems = [entry["problem"] for entry in embedded if entry["problem"]]
    return {"status": "unhealthy" if problems else "ok", "problems": problems,
            "workers": embedded, "running_jobs": jobs}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tunelab.jobs.worker``: one worker until SIGTERM/SIGINT."""
    from tunelab.store.db import session_factory

    parser = argparse.ArgumentParser(description="Run a tunelab job worker.")
    parser.add_argument("--worker-id", default=None)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--lease-s", type=float, default=30.0)
    parser.add_argument("--tick-s", type=float, default=1.0)
    parser.add_argument("--max-jobs", type=int, default=None)
    parser.add_argument("--idle-exit-s", type=float, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    worker = Worker(
        session_factory(args.database_url, role="worker"),
        args.worker_id,
        lease_s=args.lease_s,
        tick_s=args.tick_s,
        poll_s=min(1.0, args.tick_s),
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    worker.run_forever(max_jobs=args.max_jobs, idle_exit_s=args.idle_exit_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
