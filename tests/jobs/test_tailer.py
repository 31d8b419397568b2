"""Tailing the run directory: complete lines only, exactly once, and safe across rewrites."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.orm import Session

from tunelab.jobs import service
from tunelab.jobs.tailer import ingest, read_new_lines


def _append(path: Path, *rows: dict | str) -> None:
    with path.open("a") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")


def test_reads_complete_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"step": 2')
    lines, state, restarted = read_new_lines(path, {})
    assert lines == ['{"step": 1}'] and not restarted
    with path.open("a") as fh:
        fh.write("}\n")
    lines, state, _ = read_new_lines(path, state)
    assert lines == ['{"step": 2}']
    assert read_new_lines(path, state)[0] == []


def test_rewritten_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    _append(path, {"step": 1}, {"step": 2}, {"step": 3})
    _, state, _ = read_new_lines(path, {})
    path.write_text(json.dumps({"step": 1}) + "\n")  # the engine truncates on resume ...
    _append(path, {"step": 2, "loss": 0.5}, {"step": 3, "loss": 0.4}, {"step": 4, "loss": 0.3})
    lines, _, restarted = read_new_lines(path, state)  # ... and appends past the old offset
    assert restarted and [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]


def test_ingest_upserts_metrics_and_records_checkpoints(
    session: Session, make_config, tmp_path: Path
) -> None:
    job = service.create_job(session, make_config())
    run = tmp_path / "run"
    run.mkdir()
    _append(run / "metrics.jsonl", {"type": "train", "step": 1, "loss": 2.0}, {"type": "train", "step": 2, "loss": 1.9})
    _append(run / "events.jsonl", {"type": "started", "message": "", "data": {"total_steps": 4}})
    _append(run / "train.log", "hello")
    assert ingest(session, job, run) == 4
    session.commit()
    assert ingest(session, job, run) == 0  # nothing twice
    _append(run / "metrics.jsonl", {"type": "eval", "step": 2, "eval_loss": 1.7})
    _append(run / "events.jsonl", {"type": "checkpoint_saved", "message": "", "data": {"step": 2, "path": "c2"}})
    ingest(session, job, run)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0}) + "\n")
    _append(run / "metrics.jsonl", {"step": 2, "loss": 1.8}, {"step": 3, "loss": 1.6})
    ingest(session, job, run)
    session.commit()
    rows = service.list_metrics(session, job.id)
    assert [(m.step, m.loss, m.eval_loss) for m in rows] == [(1, 2.0, None), (2, 1.8, 1.7), (3, 1.6, None)]
    assert [c.step for c in service.list_checkpoints(session, job.id)] == [2]
    assert job.global_step == 3 and job.progress == 0.75
    logs = service.list_events(session, job.id, types=["log"])
    assert [e.data["line"] for e in logs] == ["hello"]
