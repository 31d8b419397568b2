"""A job with a ``distributed`` block: the worker runs its ranks through torchrun, pause and resume included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.jobs.helpers import wait_for_job

from tunelab.jobs import service
from tunelab.store.db import session_factory

DDP = {"strategy": "ddp", "nproc_per_node": 2}


@pytest.mark.slow
def test_worker_trains_a_ddp_job_with_pause_and_resume(
    tunelab_home: Path, make_config, tiny_model_dir: Path
) -> None:
    factory = session_factory(f"sqlite:///{tunelab_home / 'tunelab.db'}")
    config = make_config(model=str(tiny_model_dir), max_steps=10, save_steps=2, max_rows=40, max_length=96,
                         batch_size=4, output={"evaluate": False}, distributed=DDP)  # fmt: skip
    with factory() as session:
        job_id = service.create_job(session, config).id
    command = [sys.executable, "-m", "tunelab.jobs.worker", "--lease-s", "10", "--tick-s", "0.3",
               "--max-jobs", "2", "--idle-exit-s", "60"]  # fmt: skip
    # Step 4 is held 8 s (test hook), so the pause lands mid-run however fast the ranks train.
    env = {**os.environ, "TUNELAB_TEST_HOOKS": "step@4=8"}
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_for_job(factory, job_id, lambda j: bool(j.run_dir) and (Path(j.run_dir) / "hook-step-4").exists(),
                     timeout=240)  # fmt: skip
        with factory() as session:
            service.pause_job(session, job_id)
        paused = wait_for_job(
            factory, job_id, lambda j: j.status in ("paused", "failed"), timeout=240
        )
        # the launcher passed the ranks' 75 on, not torchrun's 1
        assert paused.status == "paused", paused.error
        with factory() as session:
            service.resume_job(session, job_id)
        job = wait_for_job(
            factory, job_id, lambda j: j.status in ("completed", "failed"), timeout=300
        )
        assert worker.wait(timeout=90) == 0
    finally:
        worker.kill()
    assert job.status == "completed", job.error
    run_dir = Path(job.run_dir)
    assert (run_dir / "train-rank1.log").exists()  # two ranks ran
    with factory() as session:
        steps = [m.step for m in service.list_metrics(session, job_id)]
    assert steps == list(range(1, 11))  # rank 0's lines only: no gap, no duplicate across the pause
