"""Queue claims, leases and reconciliation on SQLite and PostgreSQL (no engine needed)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tunelab.jobs import service
from tunelab.jobs.queue import LeaseLost, claim_next_job, heartbeat
from tunelab.jobs.reconcile import make_worker_id, reconcile, requeue_expired
from tunelab.store.models import Job, utcnow


def test_claims_by_priority_then_age(factory: sessionmaker[Session], make_config) -> None:
    with factory() as session:
        low = service.create_job(session, make_config(), priority="low").id
        medium = service.create_job(session, make_config()).id
        high = service.create_job(session, make_config(), priority="high").id
        medium2 = service.create_job(session, make_config()).id
    order = [claim_next_job(factory, "w", lease_s=30).id for _ in range(4)]
    assert order == [high, medium, medium2, low]
    assert claim_next_job(factory, "w", lease_s=30) is None
    with factory() as session:
        job = session.get(Job, high)
        assert job.status == "running" and job.worker_id == "w" and job.attempts == 1
        assert job.lease_expires_at > utcnow()


def test_concurrent_claims_are_exactly_once(factory: sessionmaker[Session], make_config) -> None:
    with factory() as session:
        ids = {service.create_job(session, make_config()).id for _ in range(24)}
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while (job := claim_next_job(factory, name, lease_s=30)) is not None:
            with lock:
                claimed.append((job.id, name))

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = Counter(job_id for job_id, _ in claimed)
    assert set(counts) == ids and set(counts.values()) == {1}
    with factory() as session:
        for job_id, name in claimed:
            assert session.get(Job, job_id).worker_id == name


def _expire(factory: sessionmaker[Session], job_id: str) -> None:
    with factory() as session:
        job = session.get(Job, job_id)
        job.lease_expires_at = utcnow() - timedelta(seconds=1)
        session.commit()


def test_heartbeat_extends_lease_and_reports_requests(factory, make_config) -> None:
    with factory() as session:
        job_id = service.create_job(session, make_config()).id
    claim_next_job(factory, "w1", lease_s=5)
    assert heartbeat(factory, job_id, "w1", lease_s=60).requested_action is None
    with factory() as session:
        assert session.get(Job, job_id).lease_expires_at > utcnow() + timedelta(seconds=50)
        service.pause_job(session, job_id)
    assert heartbeat(factory, job_id, "w1", lease_s=60).requested_action == "pause"
    with pytest.raises(LeaseLost):
        heartbeat(factory, job_id, "someone-else", lease_s=60)


def test_expired_lease_requeues_then_fails_worker_lost(factory, make_config) -> None:
    with factory() as session:
        job_id = service.create_job(session, make_config(), max_attempts=2).id
    claim_next_job(factory, "w1", lease_s=30)
    with factory() as session:
        assert requeue_expired(session) == []  # lease still valid
    _expire(factory, job_id)
    with factory() as session:
        assert requeue_expired(session) == [(job_id, "queued")]
        job = session.get(Job, job_id)
        assert job.attempts == 2 and job.worker_id is None and job.error is None
    with pytest.raises(LeaseLost):
        heartbeat(factory, job_id, "w1", lease_s=30)  # the old worker must stop
    assert claim_next_job(factory, "w2", lease_s=30).id == job_id
    _expire(factory, job_id)
    with factory() as session:
        assert requeue_expired(session) == [(job_id, "failed")]
        job = session.get(Job, job_id)
        assert job.error["code"] == "worker_lost" and job.error["hint"]
        statuses = [e.data["status"] for e in service.list_events(session, job_id, types=["status"])]
    assert statuses == ["created", "queued", "running", "queued", "running", "failed"]


def test_startup_reconcile_requeues_dead_local_worker(factory, make_config) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that existed and is gone
    dead = make_worker_id().rsplit(":", 1)[0] + f":{proc.pid}"
    with factory() as session:
        lost = service.create_job(session, make_config()).id
        alive = service.create_job(session, make_config()).id
    claim_next_job(factory, dead, lease_s=300)
    claim_next_job(factory, make_worker_id("other"), lease_s=300)
    with factory() as session:
        assert reconcile(session) == [(lost, "queued")]
        assert session.get(Job, alive).status == "running"
