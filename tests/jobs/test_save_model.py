"""``saveModel: false`` keeps no weights: checked on a real engine run and on the outcome step alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tunelab.jobs import service
from tunelab.jobs.outcome import Outcome, finish
from tunelab.jobs.states import JobStatus
from tunelab.jobs.worker import Worker
from tunelab.store.db import session_factory

FAST = {"max_rows": 40, "max_length": 96, "batch_size": 2, "output": {"evaluate": False}}
WEIGHTS = (".safetensors", ".bin", ".pt", ".pth")


def _weights(run_dir: Path) -> list[str]:
    return sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.suffix in WEIGHTS)


@pytest.fixture
def factory(tunelab_home: Path) -> sessionmaker[Session]:
    return session_factory(f"sqlite:///{tunelab_home / 'tunelab.db'}")


def test_finish_discards_weights_only_when_asked(factory: sessionmaker[Session], make_config, tmp_path: Path) -> None:
    from tunelab.jobs.events import set_status

    for save_model in (False, True):
        with factory() as session:
            job = service.create_job(session, make_config(), save_options={"save_model": save_model})
            set_status(session, job, JobStatus.RUNNING)
            run_dir = tmp_path / job.id
            for name in ("output/adapter_model.safetensors", "output/merged/model.safetensors",
                         "checkpoints/checkpoint-2/training_state.pt", "output/tokenizer.json"):  # fmt: skip
                (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
                (run_dir / name).write_text("x")
            finish(session, job, Outcome(JobStatus.FAILED, error={"code": "engine_crashed"}), run_dir)
            session.commit()
            kept = _weights(run_dir)
            assert (kept == []) is (not save_model), kept
            assert (run_dir / "output/tokenizer.json").exists()
            events = [e.data.get("type") for e in service.list_events(session, job.id, types=["event"])]
            assert ("weights_discarded" in events) is (not save_model)


@pytest.mark.slow
def test_a_real_job_with_save_model_false_leaves_no_weights(
    factory: sessionmaker[Session], make_config, tiny_model_dir: Path
) -> None:
    config = make_config(model=str(tiny_model_dir), max_steps=4, save_steps=2, **FAST)
    with factory() as session:
        job_id = service.create_job(session, config, save_options={"save_model": False, "model_name": "nope"}).id
    assert Worker(factory, tick_s=0.2, sample_s=0.5, grace_s=20, lease_s=10).run_once() == job_id
    with factory() as session:
        job = service.get_job(session, job_id)
        assert job.status == "completed", job.error
        run_dir = Path(job.run_dir)
        assert _weights(run_dir) == [] and not (run_dir / "checkpoints").exists()
        assert service.list_checkpoints(session, job_id) == []
        paths = [a.path for a in service.list_artifacts(session, job_id)]
        assert "output/summary.json" in paths and not any(p.endswith(WEIGHTS) for p in paths)
        from tunelab.errors import NotFound
        from tunelab.store.catalog import get_model

        with pytest.raises(NotFound):
            get_model(session, "nope")  # not added to the collection either
