"""Acceptance of scale-out: two real worker processes on PostgreSQL, each with its own home and run
root, sharing the dataset, checkpoints and outputs through an S3 endpoint (moto's server mode).

20 jobs complete, each exactly once; the one whose worker is killed (SIGKILL) mid-run resumes on
the other worker from the checkpoint the first one uploaded, its metrics without a gap or a
duplicate; a job that asks for a GPU is never claimed by these CPU-only workers and is reported
as waiting for resources.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.api.live import env_for, stop
from tests.faults.helpers import FAST, HOOKS, assert_recovered, engine_events, statuses, wait_until
from tests.storage.s3 import S3_ENV, s3_endpoint

from tunelab.jobs import datasets, service
from tunelab.settings import Settings
from tunelab.storage import open_storage
from tunelab.store.db import init_db, session_factory
from tunelab.store.models import Job, JobEvent

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(1800)]
BUCKET, PREFIX = "tunelab-shared", "studio"
TINY_JOBS = 19  # plus the long one: 20


def _worker(
    name: str, home: Path, root: Path, db: str, endpoint: str, log: Path
) -> subprocess.Popen[bytes]:
    """``python -m tunelab.jobs.worker`` (what ``tunelab worker`` runs) with its own run root."""
    env = env_for(home) | S3_ENV | {
        "TUNELAB_DATABASE_URL": db, "TUNELAB_RUNS_ROOT": str(root),
        "TUNELAB_ARTIFACTS_URL": f"s3://{BUCKET}/{PREFIX}", "TUNELAB_ARTIFACTS_ENDPOINT_URL": endpoint,
        "TUNELAB_STOP_NO_PROGRESS_S": "60", HOOKS: "step@5=8",  # step 5 is held 8 s: the kill lands there
    }  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tunelab.jobs.worker", "--worker-id", name, "--lease-s", "6", "--tick-s", "0.5"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _events(factory, job_id: str, kind: str) -> list[dict]:
    return [e for e in engine_events(factory, job_id) if e.get("type") == kind]


def _uploaded_and_stored(factory, job_id: str, step: int) -> bool:
    uploaded = any(
        e["data"].get("step") == step for e in _events(factory, job_id, "checkpoint_uploaded")
    )
    with factory() as session:
        return uploaded and (session.get(Job, job_id).global_step or 0) >= step


def test_two_workers_share_artifacts_and_a_killed_workers_job_resumes_on_the_other(
    postgres_url: str, make_config, tiny_model_dir: Path, tunelab_home: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, dataset_file: Path,
) -> None:  # fmt: skip
    from tunelab.store.testing import clear_tables

    init_db(postgres_url)
    clear_tables(postgres_url)
    factory = session_factory(postgres_url)
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    roots = {name: tmp_path / f"runs-{name}" for name in ("a", "b")}
    homes = {name: tmp_path / f"home-{name}" for name in ("a", "b")}
    with s3_endpoint(BUCKET) as endpoint:
        studio = Settings(home=tunelab_home, database_url=postgres_url, artifacts_url=f"s3://{BUCKET}/{PREFIX}",
                          artifacts_endpoint_url=endpoint)  # fmt: skip
        with factory() as session:  # the dataset stored in the studio's home (and shared), then the jobs on it
            _, version = datasets.ingest(session, dataset_file, name="numbers", settings=studio)
            config = {"model": str(tiny_model_dir), "dataset": "numbers", **FAST}
            tiny = [service.create_job(session, make_config(**config, max_steps=2, save_steps=0),
                                       name=f"tiny-{i}", priority="high").id for i in range(TINY_JOBS)]  # fmt: skip
            long_job = service.create_job(session, make_config(**config, max_steps=8, save_steps=2), name="long").id
            gpu_job = service.create_job(session, make_config(**config, max_steps=2), name="needs-gpu",
                                         save_options={"resources": {"device": "cuda"}}).id  # fmt: skip
        workers = {name: _worker(name, homes[name], root, postgres_url, endpoint, tmp_path / f"{name}.log")
                   for name, root in roots.items()}  # fmt: skip
        try:
            # The long job, held in step 5 on whichever worker took it, with checkpoint-4 uploaded.
            held = {}
            wait_until(lambda: held.update({n: r for n, r in roots.items() if (r / long_job / "hook-step-5").exists()})
                       or bool(held), 1200, "the long job in step 5")  # fmt: skip
            (first,) = held
            other = "b" if first == "a" else "a"
            wait_until(
                lambda: _uploaded_and_stored(factory, long_job, 4),
                60,
                "checkpoint-4 uploaded, step 4 stored",
            )
            workers[first].send_signal(signal.SIGKILL)
            workers[first].wait(timeout=10)
            deadline = time.monotonic() + 600
            wanted = [long_job, *tiny]
            while time.monotonic() < deadline:
                with factory() as session:
                    done = session.scalars(select(Job.status).where(Job.id.in_(wanted))).all()
                if len(done) == len(wanted) and all(s in ("completed", "failed") for s in done):
                    break
                assert workers[other].poll() is None, (tmp_path / f"{other}.log").read_text()[
                    -3000:
                ]
                time.sleep(1)
            with factory() as session:
                gpu = session.get(Job, gpu_job)
                assert gpu is not None and gpu.status == "queued"
                assert gpu.wait_reason == "waiting for resources: needs 1 GPU; workers have none"
                assert (
                    gpu.to_dict()["wait_reason"] == gpu.wait_reason
                )  # what GET /api/jobs/{id} answers
            storage = open_storage(Settings(home=tunelab_home, artifacts_url=f"s3://{BUCKET}/{PREFIX}",
                                            artifacts_endpoint_url=endpoint))  # fmt: skip
            assert storage is not None
            uploaded_outputs = {
                job_id
                for job_id in wanted
                if "adapter_config.json" in storage.children(f"runs/{job_id}/output")
            }
            stored_steps = storage.children(f"runs/{long_job}/checkpoints")
        finally:
            for process in workers.values():
                stop(process)

    # Every job exactly once: one claim, completed; the GPU job never claimed.
    with factory() as session:
        for job_id in tiny:
            job = session.get(Job, job_id)
            assert job.status == "completed", (job_id, job.status, job.error)
            assert statuses(factory, job_id) == ["created", "queued", "running", "completed"]
        ran_on = {e.data["worker_id"] for e in session.scalars(select(JobEvent).where(
            JobEvent.job_id.in_(tiny), JobEvent.type == "status")) if e.data["status"] == "running"}  # fmt: skip
        assert ran_on == {"a", "b"}  # both workers took a share
        claims = session.scalars(
            select(JobEvent).where(JobEvent.job_id == gpu_job, JobEvent.type == "status")
        ).all()
        assert [c.data["status"] for c in claims] == ["created", "queued"]
    assert len(_events(factory, gpu_job, "waiting_for_resources")) == 1
    assert uploaded_outputs == set(wanted)  # every output is in the shared store
    for home in homes.values():  # each worker trained on its own copy of the dataset, staged from the store
        assert (home / "datasets" / version.id / "records.jsonl").read_bytes() == Path(version.path).read_bytes()

    # The long job: killed with its worker, resumed on the other from the uploaded checkpoint-4.
    job = assert_recovered(factory, long_job, status="completed", last_step=8, resumed_from=4)
    assert job.attempts == 1  # the dead worker's engine stopped cleanly (parent-death SIGTERM)
    runs = [c for c in statuses(factory, long_job)]
    assert runs == ["created", "queued", "running", "queued", "running", "completed"]
    with factory() as session:
        running = session.scalars(select(JobEvent).where(JobEvent.job_id == long_job, JobEvent.type == "status")
                                  .order_by(JobEvent.id)).all()  # fmt: skip
    assert [e.data.get("worker_id") for e in running if e.data["status"] == "running"] == [
        first,
        other,
    ]
    (downloaded,) = _events(factory, long_job, "checkpoint_downloaded")
    assert downloaded["data"]["step"] == 4
    assert (roots[other] / long_job / "checkpoints").is_dir() and (roots[first] / long_job).is_dir()
    # 2 and 4 from the first worker, 6 from the second (the last step saves only the output); the
    # checkpoint-5 the killed worker's engine wrote on its way out never left that machine.
    assert stored_steps == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
