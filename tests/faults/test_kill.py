"""kill -9 of the engine (during a step, a checkpoint save, the final save), of the worker and of the server.

The engine is held at the chosen point by a test hook (``TUNELAB_TEST_HOOKS``,
see ``tunelab.training.testhooks``) and killed there, as the out-of-memory
killer would. A killed engine costs one attempt and the job resumes from its
newest valid checkpoint; a killed worker or server costs none, because its
engine gets SIGTERM, finishes the step and checkpoints cleanly.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.api.live import env_for, free_port, stop, wait_healthy
from tests.faults.helpers import (
    HOOKS,
    assert_recovered,
    assert_worker_alive,
    create_job,
    engine_events,
    kill_engine_at,
    run_dir,
    statuses,
    wait_status,
    wait_until,
    worker_thread,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def test_engine_killed_during_a_step_resumes_from_the_newest_checkpoint(
    factory, make_config, tiny_model_dir: Path, tunelab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOOKS, "step@5=120")
    job_id = create_job(factory, make_config, tiny_model_dir, max_steps=8, save_steps=2)
    with worker_thread(tunelab_home) as worker:
        kill_engine_at(run_dir(tunelab_home, job_id), "hook-step-5")
        wait_status(factory, job_id, ("completed", "failed"))
        assert_worker_alive(worker)
    job = assert_recovered(factory, job_id, status="completed", last_step=8, resumed_from=4)
    assert job.attempts == 2  # a crash costs one attempt of max_attempts
    crash = [e for e in engine_events(factory, job_id) if e.get("type") == "engine_crashed"]
    assert len(crash) == 1 and "killed by SIGKILL" in crash[0]["message"] and "attempt 2 of 3" in crash[0]["message"]
    assert statuses(factory, job_id) == ["created", "queued", "running", "queued", "running", "completed"]


def test_engine_killed_during_a_checkpoint_save_uses_the_previous_checkpoint(
    factory, make_config, tiny_model_dir: Path, tunelab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOOKS, "checkpoint@6=120")
    job_id = create_job(factory, make_config, tiny_model_dir, max_steps=8, save_steps=2)
    folder = run_dir(tunelab_home, job_id)
    with worker_thread(tunelab_home) as worker:
        kill_engine_at(folder, "hook-checkpoint-6")
        assert (folder / "checkpoints" / ".tmp-checkpoint-6").is_dir()  # killed half way through the save
        wait_status(factory, job_id, ("completed", "failed"))
        assert_worker_alive(worker)
    job = assert_recovered(factory, job_id, status="completed", last_step=8, resumed_from=4)
    assert job.attempts == 2
    assert not list((folder / "checkpoints").glob(".tmp-*"))
    assert all((p / "manifest.json").exists() for p in (folder / "checkpoints").glob("checkpoint-*"))


def test_engine_killed_during_the_final_save_completes_with_a_whole_output(
    factory, make_config, tiny_model_dir: Path, tunelab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOOKS, "output=120")
    job_id = create_job(factory, make_config, tiny_model_dir, max_steps=8, save_steps=3)
    folder = run_dir(tunelab_home, job_id)
    with worker_thread(tunelab_home) as worker:
        kill_engine_at(folder, "hook-output-8")
        assert not (folder / "output" / "summary.json").exists()
        wait_status(factory, job_id, ("completed", "failed"))
        assert_worker_alive(worker)
    job = assert_recovered(factory, job_id, status="completed", last_step=8, resumed_from=6)
    assert job.attempts == 2
    assert (folder / "output" / "summary.json").exists()
    from safetensors.torch import load_file

    assert load_file(folder / "output" / "adapter_model.safetensors")  # whole, loadable weights


def _worker_process(home: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tunelab.jobs.worker", "--lease-s", "5", "--tick-s", "0.3"],
            env=env_for(home) | {"TUNELAB_STOP_NO_PROGRESS_S": "60"}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def test_worker_killed_during_a_step_costs_no_attempt(
    factory, make_config, tiny_model_dir: Path, tunelab_home: Path, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The engine outlives its worker by one step (parent-death SIGTERM), checkpoints, exits 75."""
    monkeypatch.setenv(HOOKS, "step@5=6")
    job_id = create_job(factory, make_config, tiny_model_dir, max_steps=8, save_steps=2)
    folder = run_dir(tunelab_home, job_id)
    first = _worker_process(tunelab_home, tmp_path / "worker-1.log")
    try:
        wait_until(lambda: (folder / "hook-step-5").exists(), 180, "the engine in step 5")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
    second = _worker_process(tunelab_home, tmp_path / "worker-2.log")
    try:
        wait_status(factory, job_id, ("completed", "failed"))
        assert second.poll() is None  # the worker is alive
    finally:
        stop(second)
    job = assert_recovered(factory, job_id, status="completed", last_step=8, resumed_from=5)
    assert job.attempts == 1  # the engine stopped cleanly at checkpoint-5
    paused = [e for e in engine_events(factory, job_id) if e.get("type") == "paused"]
    assert paused and paused[0]["data"]["reason"] == "SIGTERM"


def _serve(home: Path, port: int, log: Path, hooks: str = "") -> subprocess.Popen[bytes]:
    env = env_for(home) | {"TUNELAB_STOP_NO_PROGRESS_S": "60"} | ({HOOKS: hooks} if hooks else {})
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tunelab", "serve", "--port", str(port), "--log-level", "warning"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    wait_healthy(f"http://127.0.0.1:{port}")
    return process


def test_server_killed_during_training_resumes_after_restart_without_an_attempt(
    factory, make_config, tiny_model_dir: Path, tunelab_home: Path, tmp_path: Path
) -> None:
    job_id = create_job(factory, make_config, tiny_model_dir, max_steps=12, save_steps=2)
    folder = run_dir(tunelab_home, job_id)
    port = free_port()
    # Step 5 is held a few seconds, so the kill lands mid-run however fast the machine trains.
    server = _serve(tunelab_home, port, tmp_path / "serve-1.log", hooks="step@5=6")
    try:
        wait_until(lambda: (folder / "hook-step-5").exists(), 180, "the engine in step 5")
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
    finally:
        server.kill()
    server = _serve(tunelab_home, port, tmp_path / "serve-2.log")
    try:
        wait_status(factory, job_id, ("completed", "failed"))
        assert server.poll() is None
        import httpx

        health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10).json()
        assert health["status"] == "ok" and all(w["alive"] for w in health["workers"]), health
    finally:
        stop(server)
    events = engine_events(factory, job_id)
    stopped_at = next(e["data"]["step"] for e in events if e.get("type") == "paused")
    job = assert_recovered(factory, job_id, status="completed", last_step=12, resumed_from=stopped_at)
    assert job.attempts == 1
    queued = [e for e in statuses(factory, job_id)]
    assert queued == ["created", "queued", "running", "queued", "running", "completed"]
