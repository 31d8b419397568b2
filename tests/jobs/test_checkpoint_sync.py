"""The store's checkpoints mirror the folders the engine keeps (it prunes beyond save_total_limit)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tunelab.jobs import service
from tunelab.jobs.tailer import ingest
from tunelab.jobs.worker import Worker
from tunelab.store.db import session_factory


def _save(run: Path, step: int, *, event: bool = True) -> Path:
    """A complete checkpoint folder plus (unless told) its event, as the engine leaves them."""
    folder = run / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if not event:
        return folder
    line = {"type": "checkpoint_saved", "message": "", "data": {"step": step, "path": str(folder)}}
    with (run / "events.jsonl").open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    return folder


def _steps(session: Session, job_id: str) -> list[int]:
    return [c.step for c in service.list_checkpoints(session, job_id)]


def test_rows_follow_the_folders_on_disk(session: Session, make_config, tmp_path: Path) -> None:
    job = service.create_job(session, make_config())
    run = tmp_path / "run"
    run.mkdir()
    first, _ = _save(run, 1), _save(run, 2)
    ingest(session, job, run)
    session.commit()
    assert _steps(session, job.id) == [1, 2]
    shutil.rmtree(first)  # the engine prunes 1 after writing 3 (save_total_limit=2)
    third = _save(run, 3)
    ingest(session, job, run)
    session.commit()
    assert _steps(session, job.id) == [2, 3]
    shutil.rmtree(run / "checkpoints" / "checkpoint-2")  # pruned, event for 4 not written yet
    _save(run, 4, event=False)
    ingest(session, job, run)  # a complete folder without its event still gets a row
    session.commit()
    assert _steps(session, job.id) == [3, 4]
    shutil.rmtree(run / "checkpoints" / "checkpoint-4")  # re-save of 4: remove, then rename
    ingest(session, job, run)
    session.commit()
    assert _steps(session, job.id) == [3, 4]  # the latest stays listed
    assert service.list_checkpoints(session, job.id)[0].path == str(third)


@pytest.mark.slow
def test_real_job_lists_only_the_checkpoints_kept(
    make_config, tiny_model_dir, tunelab_home
) -> None:
    factory: sessionmaker[Session] = session_factory(f"sqlite:///{tunelab_home / 'tunelab.db'}")
    hyper = {"max_rows": 40, "max_length": 96, "batch_size": 2, "output": {"evaluate": False},
             "max_steps": 5, "save_steps": 1, "save_total_limit": 2}  # fmt: skip
    with factory() as session:
        job_id = service.create_job(session, make_config(model=str(tiny_model_dir), **hyper)).id
    worker = Worker(factory, tick_s=0.2, sample_s=5, grace_s=20, lease_s=10)
    assert worker.run_once() == job_id
    with factory() as session:
        job = service.get_job(session, job_id)
        assert job.status == "completed"
        saved = [
            e.data["data"]["step"]
            for e in service.list_events(session, job_id, types=["event"], limit=10_000)
            if e.data.get("type") == "checkpoint_saved"
        ]
        rows = service.list_checkpoints(session, job_id)
    on_disk = sorted(p.name for p in (Path(job.run_dir) / "checkpoints").iterdir())
    assert saved == [1, 2, 3, 4]  # saved every step before the last ...
    assert on_disk == ["checkpoint-3", "checkpoint-4"]  # ... the engine kept two ...
    assert [c.step for c in rows] == [3, 4]  # ... and the store lists exactly those
    assert all(Path(c.path).is_dir() for c in rows)
