"""Workers advertise resources; the claim takes only jobs that fit; a job nobody can run says so.

On SQLite and PostgreSQL (the claim's ``FOR UPDATE SKIP LOCKED`` query).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tunelab.jobs import service
from tunelab.jobs.queue import claim_next_job
from tunelab.jobs.resources import (
    GIB,
    Resources,
    advertise,
    detect_resources,
    list_workers,
    report_waiting,
)
from tunelab.jobs.worker import Worker
from tunelab.settings import Settings
from tunelab.store.models import Job, JobEvent, WorkerRecord

CPU_ONLY = Resources(gpus=[], cpu_count=2, ram_total=8 * GIB)
ONE_GPU = Resources(gpus=[{"index": 0, "name": "NVIDIA H100", "memory_total": 80 * GIB}], cpu_count=16,
                    ram_total=128 * GIB)  # fmt: skip


def _job(
    factory: sessionmaker[Session], make_config, resources: dict | None = None, **hyper: object
) -> str:
    with factory() as session:
        options = {"resources": resources} if resources is not None else None
        return service.create_job(session, make_config(**hyper), save_options=options).id


def _waiting_events(factory: sessionmaker[Session], job_id: str) -> list[dict]:
    with factory() as session:
        rows = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "event")
        )
        return [row.data for row in rows if row.data.get("type") == "waiting_for_resources"]


def test_a_gpu_job_is_never_claimed_by_a_cpu_worker_and_is_reported_waiting(
    factory: sessionmaker[Session], make_config
) -> None:
    gpu_job = _job(factory, make_config, {"device": "cuda", "gpus": 1})
    cpu_job = _job(factory, make_config)
    claimed = claim_next_job(factory, "cpu-worker", lease_s=30, resources=CPU_ONLY)
    assert claimed is not None and claimed.id == cpu_job  # the older GPU job was passed over
    assert claim_next_job(factory, "cpu-worker", lease_s=30, resources=CPU_ONLY) is None
    with factory() as session:
        advertise(session, "cpu-worker", CPU_ONLY, cpu_job)
        assert report_waiting(session, stale_s=60) == [
            (gpu_job, "waiting for resources: needs 1 GPU; workers have none")
        ]
        assert report_waiting(session, stale_s=60) == []  # said once
        job = session.get(Job, gpu_job)
        assert job.status == "queued" and job.to_dict()["wait_reason"].startswith(
            "waiting for resources"
        )
    events = _waiting_events(factory, gpu_job)
    assert (
        len(events) == 1
        and events[0]["data"]["gpus"] == 1
        and events[0]["data"]["live_workers"] == 1
    )
    # A GPU worker appears: the reason is cleared, and that worker claims the job.
    with factory() as session:
        advertise(session, "gpu-worker", ONE_GPU, None)
        assert report_waiting(session, stale_s=60) == [(gpu_job, None)]
    claimed = claim_next_job(factory, "gpu-worker", lease_s=30, resources=ONE_GPU)
    assert claimed is not None and claimed.id == gpu_job and claimed.wait_reason is None


def test_device_cuda_in_the_hyperparameters_needs_a_gpu(
    factory: sessionmaker[Session], make_config
) -> None:
    job_id = _job(factory, make_config, device="cuda")
    assert claim_next_job(factory, "cpu-worker", lease_s=30, resources=CPU_ONLY) is None
    claimed = claim_next_job(factory, "gpu-worker", lease_s=30, resources=ONE_GPU)
    assert claimed is not None and claimed.id == job_id
    ddp = _job(
        factory, make_config, device="cuda", distributed={"strategy": "ddp", "nproc_per_node": 2}
    )
    assert (
        claim_next_job(factory, "gpu-worker", lease_s=30, resources=ONE_GPU) is None
    )  # one process per GPU
    with factory() as session:
        advertise(session, "gpu-worker", ONE_GPU, None)
        assert dict(report_waiting(session, stale_s=60))[ddp].startswith(
            "waiting for resources: needs 2 GPUs"
        )


def test_gpu_count_and_memory_decide(factory: sessionmaker[Session], make_config) -> None:
    two = _job(factory, make_config, {"device": "cuda", "gpus": 2})
    big = _job(factory, make_config, {"device": "cuda", "gpus": 1, "memory_gb": 100})
    ram = _job(factory, make_config, {"device": "cpu", "memory_gb": 64})
    assert (
        claim_next_job(factory, "gpu-worker", lease_s=30, resources=ONE_GPU).id == ram
    )  # 64 of 128 GB RAM
    assert claim_next_job(factory, "gpu-worker", lease_s=30, resources=ONE_GPU) is None
    with factory() as session:
        advertise(session, "gpu-worker", ONE_GPU, None)
        reasons = dict(report_waiting(session, stale_s=60))
    assert reasons == {
        two: "waiting for resources: needs 2 GPUs; workers have at most 1 GPU",
        big: "waiting for resources: needs 1 GPU, 100 GB of GPU memory; workers have at most 1 GPU, at most 80.0 GB",
    }


def test_no_live_worker_says_nothing(factory: sessionmaker[Session], make_config) -> None:
    job_id = _job(factory, make_config, {"device": "cuda"})
    with factory() as session:
        advertise(session, "gone", CPU_ONLY, None)
        row = session.get(WorkerRecord, "gone")
        row.stopped_at = row.heartbeat_at
        session.commit()
        assert report_waiting(session, stale_s=60) == []
        assert session.get(Job, job_id).wait_reason is None


def test_detected_resources_are_this_machine() -> None:
    import os

    import psutil

    found = detect_resources()
    assert 1 <= found.cpu_count <= (os.cpu_count() or 1)
    assert found.ram_total == psutil.virtual_memory().total
    assert found.gpu_count == len(found.gpus) and "CPUs" in found.describe()


def test_the_worker_advertises_claims_by_its_resources_and_retires(
    factory: sessionmaker[Session], db_url: str, make_config, tunelab_home
) -> None:
    gpu_job = _job(factory, make_config, {"device": "cuda"})
    settings = Settings(home=tunelab_home, database_url=db_url)
    worker = Worker(
        factory, "cpu-1", settings, resources=CPU_ONLY, poll_s=0.05, reconcile_every_s=0
    )
    assert worker.run_forever(idle_exit_s=0.3) == 0  # the GPU job is not for it
    with factory() as session:
        job = session.get(Job, gpu_job)
        assert (
            job.status == "queued"
            and job.wait_reason == "waiting for resources: needs 1 GPU; workers have none"
        )
        (listed,) = list_workers(session, stale_s=60)
    assert listed["id"] == "cpu-1" and listed["gpu_count"] == 0 and listed["cpu_count"] == 2
    assert listed["stopped_at"] is not None and listed["alive"] is False and listed["jobs"] == []
