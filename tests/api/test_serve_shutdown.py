"""Ctrl-C on `tunelab serve` mid-job hands the job back at a checkpoint without using an attempt."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.api.live import env_for, free_port, wait_healthy

from tunelab.client import Client

FAST = {"batch_size": 2, "max_length": 96, "max_rows": 48, "eval_max_rows": 4, "save_steps": 1,
        "max_steps": 400, "output": {"evaluate": False}}  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ctrl_c_requeues_the_running_job_at_a_checkpoint(
    tunelab_home: Path, tmp_path: Path, shared_datasets: Path, tiny_model_dir: Path
) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "tunelab", "serve", "--port", str(port), "--log-level", "warning"],
            env=env_for(tunelab_home), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_healthy(url, timeout_s=60)
        with Client(url) as client:
            uploaded = client.upload_dataset(shared_datasets / "alpaca_en_demo.json")
            job = client.create_job(str(tiny_model_dir), uploaded["version"]["id"], FAST)
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and not client.job_metrics(job["id"])["data"]:
                time.sleep(0.2)
            assert client.job_metrics(job["id"])["data"], log.read_text()[-3000:]
        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    assert "stopping: checkpointing" in log.read_text()

    from sqlalchemy import select

    from tunelab.jobs import service
    from tunelab.settings import get_settings
    from tunelab.store.db import session_factory
    from tunelab.store.models import Checkpoint

    with session_factory(get_settings().resolved_database_url)() as session:
        stored = service.get_job(session, job["id"])
        assert stored.status == "queued", (stored.status, stored.error)
        assert stored.attempts == 1 and stored.error is None
        assert 0 < stored.global_step < 400
        steps = list(session.scalars(select(Checkpoint.step).where(Checkpoint.job_id == job["id"])))
        assert stored.global_step in steps
