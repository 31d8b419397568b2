"""Pausing waits for the step however long it takes; only an engine with no progress is killed.

The old supervisor sent SIGTERM after ``grace_s`` (30 s) and SIGKILL after
twice that (60 s). Here a step is made to take 65 s (test hook) with the
default ``grace_s``: the pause waits it out, shows "pausing after step N",
saves the checkpoint and the job is paused, then resumes and completes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.faults.helpers import (
    HOOKS,
    assert_recovered,
    assert_worker_alive,
    create_job,
    engine_events,
    run_dir,
    wait_status,
    wait_until,
    worker_thread,
)

from tunelab.jobs import service
from tunelab.store.models import Job

pytestmark = pytest.mark.slow


@pytest.mark.timeout(400)
def test_pause_waits_for_a_step_longer_than_the_old_60_s_limit(
    factory, make_config, tiny_model_dir: Path, tunelab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOOKS, "step@4=65")
    job_id = create_job(factory, make_config, tiny_model_dir, max_steps=8, save_steps=0)
    folder = run_dir(tunelab_home, job_id)
    with worker_thread(tunelab_home, no_progress_s=120, grace_s=30) as worker:
        wait_until(lambda: (folder / "hook-step-4").exists(), 180, "the engine in its slow step 4")
        with factory() as session:
            answer = service.pause_job(session, job_id).to_dict()
        # Before the worker's next tick the step is the engine's last heartbeat the worker saw: on a
        # loaded machine the worker may not have tailed steps 2-4 yet (CI saw 1), never a later one.
        after = answer["stopping"]["after_step"]
        assert answer["stopping"]["action"] == "pause" and (after is None or after <= 4), answer["stopping"]

        def told() -> bool:
            with factory() as session:
                job = session.get(Job, job_id)
                return bool(job and (job.to_dict()["stopping"] or {}).get("since"))

        wait_until(told, 30, "the worker to take up the pause")
        with factory() as session:
            stopping = session.get(Job, job_id).to_dict()["stopping"]
        assert (stopping["action"], stopping["after_step"]) == ("pause", 4)
        job = wait_status(factory, job_id, ("paused", "failed", "completed"), timeout=200)
        assert job.status == "paused", job.error
        assert job.to_dict()["stopping"] is None
        events = engine_events(factory, job_id)
        note = next(e for e in events if e.get("type") == "stopping")
        assert note["message"].startswith("pausing after step 4") and note["data"] == {"action": "pause",
                                                                                       "after_step": 4}
        assert not any(e.get("type") == "engine_unresponsive" for e in events)
        assert [e["data"]["step"] for e in events if e.get("type") == "paused"] == [4]
        assert (folder / "checkpoints" / "checkpoint-4" / "manifest.json").exists()
        with factory() as session:
            service.resume_job(session, job_id)
        wait_status(factory, job_id, ("completed", "failed"))
        assert_worker_alive(worker)
    job = assert_recovered(factory, job_id, status="completed", last_step=8, resumed_from=4)
    assert job.attempts == 1  # a clean pause costs no attempt


@pytest.mark.timeout(300)
def test_a_stuck_engine_is_killed_after_the_no_progress_limit_and_the_job_pauses(
    factory, make_config, tiny_model_dir: Path, tunelab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOOKS, "step@5=300")
    job_id = create_job(factory, make_config, tiny_model_dir, max_steps=8, save_steps=2)
    folder = run_dir(tunelab_home, job_id)
    with worker_thread(tunelab_home, no_progress_s=4) as worker:
        wait_until(lambda: (folder / "hook-step-5").exists(), 180, "the engine stuck in step 5")
        with factory() as session:
            service.pause_job(session, job_id)
        job = wait_status(factory, job_id, ("paused", "failed", "completed"), timeout=60)
        assert job.status == "paused", job.error
        unresponsive = [e for e in engine_events(factory, job_id) if e.get("type") == "engine_unresponsive"]
        assert len(unresponsive) == 1 and "no progress" in unresponsive[0]["message"]
        with factory() as session:
            service.resume_job(session, job_id)
        wait_status(factory, job_id, ("completed", "failed"))
        assert_worker_alive(worker)
    job = assert_recovered(factory, job_id, status="completed", last_step=8, resumed_from=4)
    assert job.attempts == 1
