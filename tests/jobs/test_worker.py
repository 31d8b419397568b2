"""The worker with the real engine on a tiny model: complete, pause/resume, cancel, timeout, failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from tests.jobs.helpers import wait_for_job

from tunelab.jobs import service

FAST = {"max_rows": 40, "max_length": 96, "batch_size": 2, "output": {"evaluate": False}}


def _create(factory: sessionmaker[Session], make_config: Callable, model: Path, **kw: object) -> str:  # type: ignore[type-arg]
    hyper = {**FAST, **kw.pop("hyper", {})}  # type: ignore[dict-item]
    config = make_config(model=str(model), dataset=kw.pop("dataset", None), **hyper)
    with factory() as session:
        return service.create_job(session, config, **kw).id  # type: ignore[arg-type]


def _steps(factory: sessionmaker[Session], job_id: str) -> list[int]:
    with factory() as session:
        return [m.step for m in service.list_metrics(session, job_id)]


@pytest.mark.slow
def test_job_completes_with_metrics_checkpoints_artifacts(
    sqlite_factory, worker, make_config, tiny_model_dir
) -> None:
    job_id = _create(
        sqlite_factory, make_config, tiny_model_dir, hyper={"max_steps": 6, "save_steps": 2},
        save_options={"save_model": True, "model_name": "my-tuned"},
    )
    assert worker.run_once() == job_id
    with sqlite_factory() as session:
        job = service.get_job(session, job_id)
        assert job.status == "completed" and job.error is None and job.global_step == 6
        assert job.progress == 1.0 and job.finished_at is not None
        assert [m.step for m in service.list_metrics(session, job_id)] == [1, 2, 3, 4, 5, 6]
        assert all(m.loss is not None and m.learning_rate is not None for m in service.list_metrics(session, job_id))
        assert [m.step for m in service.list_metrics(session, job_id, last_n=2)] == [5, 6]
        assert [c.step for c in service.list_checkpoints(session, job_id)] == [2, 4]
        artifacts = {a.path: a for a in service.list_artifacts(session, job_id)}
        assert "output/adapter_model.safetensors" in artifacts and "train.log" in artifacts
        artifact, path = service.get_artifact(session, job_id, artifacts["train.log"].id)
        assert path.read_bytes() and artifact.size > 0
        types = {e.type for e in service.list_events(session, job_id, limit=10_000)}
        assert types == {"status", "event", "log", "metrics", "resources"}
        from tunelab.monitor import recent_samples
        from tunelab.store.catalog import get_model

        assert recent_samples(session, job_id=job_id)[0].ram_total > 0
        assert get_model(session, "my-tuned").info["job_id"] == job_id
        assert job.configuration_id is not None
        summary = json.loads((Path(job.run_dir) / "output" / "summary.json").read_text())
        assert service.trained_tokens(session, job_id) == summary["tokens_seen"] > 0  # OpenAI's trained_tokens
    assert (Path(job.run_dir) / "config.json").exists()


@pytest.mark.slow
def test_pause_then_resume_continues_the_loss_curve(
    sqlite_factory, worker, make_config, tiny_model_dir
) -> None:
    # Enough steps that the run cannot finish before the pause request lands.
    hyper = {"max_steps": 200, "save_steps": 0, "seed": 3}
    reference = _create(sqlite_factory, make_config, tiny_model_dir, hyper=hyper)
    worker.run_once()
    job_id = _create(sqlite_factory, make_config, tiny_model_dir, hyper=hyper)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    wait_for_job(sqlite_factory, job_id, lambda j: (j.global_step or 0) >= 4)
    with sqlite_factory() as session:
        service.pause_job(session, job_id)
    thread.join(timeout=120)
    with sqlite_factory() as session:
        job = service.get_job(session, job_id)
        assert job.status == "paused"
        paused_at = job.global_step
        assert [c.step for c in service.list_checkpoints(session, job_id)] == [paused_at]
        service.resume_job(session, job_id)
    assert paused_at < 200
    assert worker.run_once() == job_id
    with sqlite_factory() as session:
        job = service.get_job(session, job_id)
        assert job.status == "completed" and job.attempts == 1
        events = [e.data for e in service.list_events(session, job_id, types=["event"], limit=10_000)]
        resumed = [e for e in events if e.get("type") == "resumed"]
        assert len(resumed) == 1 and str(paused_at) in resumed[0]["message"]
        curve = [(m.step, m.loss) for m in service.list_metrics(session, job_id)]
        base = [(m.step, m.loss) for m in service.list_metrics(session, reference)]
    assert [s for s, _ in curve] == list(range(1, 201))
    for (_, loss), (_, expected) in zip(curve, base, strict=True):
        assert loss == pytest.approx(expected, rel=1e-3, abs=1e-4)


@pytest.mark.slow
def test_cancel_stops_the_engine_and_keeps_checkpoints(
    sqlite_factory, worker, make_config, tiny_model_dir
) -> None:
    job_id = _create(sqlite_factory, make_config, tiny_model_dir, hyper={"max_steps": 200, "save_steps": 2})
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    job = wait_for_job(sqlite_factory, job_id, lambda j: (j.global_step or 0) >= 3)
    pid = job.pid
    with sqlite_factory() as session:
        service.cancel_job(session, job_id)
    thread.join(timeout=120)
    import psutil

    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with sqlite_factory() as session:
        job = service.get_job(session, job_id)
        assert job.status == "cancelled" and job.requested_action is None
        assert service.list_checkpoints(session, job_id)
    assert list((Path(job.run_dir) / "checkpoints").glob("checkpoint-*"))


@pytest.mark.slow
def test_timeout_fails_with_code_timeout(sqlite_factory, worker, make_config, tiny_model_dir) -> None:
    job_id = _create(
        sqlite_factory, make_config, tiny_model_dir, hyper={"max_steps": 500}, timeout_s=2
    )
    worker.run_once()
    with sqlite_factory() as session:
        job = service.get_job(session, job_id)
    assert job.status == "failed" and job.error["code"] == "timeout" and job.error["hint"]


@pytest.mark.slow
def test_engine_failure_carries_code_message_hint(
    sqlite_factory, worker, make_config, tiny_model_dir, tmp_path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"this is": "not a list of rows"')
    job_id = _create(sqlite_factory, make_config, tiny_model_dir, dataset=bad)
    worker.run_once()
    with sqlite_factory() as session:
        job = service.get_job(session, job_id)
    assert job.status == "failed"
    assert set(job.error) >= {"code", "message", "hint"} and job.error["code"] != "engine_crashed"
