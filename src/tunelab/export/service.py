"""Exports of a completed job, run in the background: records, progress, the artifact row.

An export takes from seconds (adapter) to minutes (GGUF or ONNX of a real
model), far longer than a request may take, and it is not training, so it runs
in the API process on one background thread (one export at a time: each loads
a model) rather than through the worker queue. Its record is a JSON file beside
the export, ``RUN_DIR/exports/<id>.json``, written atomically at each stage, so
it is readable from any API process that sees the run directory and needs no
table. A record still ``queued`` or ``running`` that this process is not
running (the server restarted) reads as failed, with the reason. When an export
completes it becomes an artifact of the job (``export-<format>``), so the job's
artifact list and download route serve it too.

An export may also be pushed to the Hugging Face Hub (``push``: repo id and
privacy; the token is the server's ``HF_TOKEN`` or saved login, never sent by
the caller). The push runs after the export is written, as its last stage;
a refused push (no token, bad token, offline) is recorded in the record's
``push`` block with its error and hint while the export itself stays
completed and downloadable, since the conversion succeeded.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from tunelab.errors import Conflict, NotFound, TunelabError
from tunelab.export.exporter import check_format, export_model
from tunelab.jobs import service as jobs

TERMINAL = ("completed", "failed")
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunelab-export")
_LOCK = threading.Lock()
_ACTIVE: set[str] = set()  # "<run_dir>#<id>" of exports this process has queued or is running


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _folder(run_dir: Path) -> Path:
    return run_dir / "exports"


def _write(run_dir: Path, record: dict[str, Any]) -> None:
    path = _folder(run_dir) / f"{record['id']}.json"
    tmp = path.with_name(f".{path.name}.tmp-{threading.get_ident()}")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def _read(run_dir: Path, path: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(path.read_text())
    if record["status"] not in TERMINAL and f"{run_dir}#{record['id']}" not in _ACTIVE:
        record.update(status="failed", error={"code": "export_interrupted",
                      "message": "the server stopped while this export ran", "hint": "start the export again"})  # fmt: skip
    return record


def _run_dir(session: Session, job_id: str, *, completed: bool) -> Path:
    job = jobs.get_job(session, job_id)
    if completed and job.status != "completed":
        raise Conflict(f"job {job_id} is {job.status}; only a completed job can be exported",
                       "wait for the job to complete, or export another job")  # fmt: skip
    if not job.run_dir or not Path(job.run_dir).is_dir():
        raise NotFound(f"job {job_id} has no run directory", "export a job that has run")
    return Path(job.run_dir)


def list_exports(session: Session, job_id: str) -> list[dict[str, Any]]:
    """The job's export records, oldest first."""
    run_dir = _run_dir(session, job_id, completed=False)
    paths = sorted(_folder(run_dir).glob("*.json"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)
    return [_read(run_dir, p) for p in paths if p.stem.isdigit()]


def get_export(session: Session, job_id: str, export_id: int) -> dict[str, Any]:
    run_dir = _run_dir(session, job_id, completed=False)
    path = _folder(run_dir) / f"{export_id}.json"
    if not path.is_file():
        raise NotFound(f"job {job_id} has no export {export_id}", "list the job's exports first")
    return _read(run_dir, path)


def export_path(session: Session, job_id: str, export_id: int) -> Path:
    """The finished export's folder, or NotFound while it is not complete."""
    record = get_export(session, job_id, export_id)
    if record["status"] != "completed":
        raise NotFound(f"export {export_id} of job {job_id} is {record['status']}, not completed",
                       "wait until its status is completed, then download it")  # fmt: skip
    return _run_dir(session, job_id, completed=False) / record["path"]


def _record_artifact(sessions: sessionmaker[Session], job_id: str, kind: str, path: str, size: int) -> int:
    from tunelab.store.models import Artifact

    with sessions() as session:
        artifact = Artifact(job_id=job_id, kind=kind[:32], path=path, size=size)
        session.add(artifact)
        session.commit()
        return int(artifact.id)


def _work(sessions: sessionmaker[Session], run_dir: Path, record: dict[str, Any]) -> None:
    def stage(name: str, fraction: float) -> None:
        record.update(status="running", stage=name, progress=round(fraction, 2))
        _write(run_dir, record)

    try:
        folder = export_model(run_dir, run_dir / record["path"], fmt=record["format"], progress=False,
                              on_stage=stage)  # fmt: skip
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        artifact = _record_artifact(sessions, record["job_id"], f"export-{record['format']}", record["path"], size)
        record.update(size=size, artifact_id=artifact)
        if record.get("push"):
            stage("pushing to the Hub", 0.95)
            _push(folder, record["push"])
        record.update(status="completed", stage="done", progress=1.0)
    except TunelabError as error:
        record.update(status="failed", error=error.to_dict())
    except Exception as error:  # a converter bug must still end the record, with what happened
        record.update(status="failed", error={"code": "export_failed", "message": f"{type(error).__name__}: "
                      f"{error}", "hint": "run `tunelab export` on the run directory with --debug for details"})  # fmt: skip
    finally:
        record["finished_at"] = _now()
        _write(run_dir, record)
        _ACTIVE.discard(f"{run_dir}#{record['id']}")


def _push(folder: Path, push: dict[str, Any]) -> None:
    """Upload the finished export; the outcome (URL, or the Hub's refusal with a hint) goes into ``push``."""
    from tunelab.export.hub import push_to_hub

    try:
        push.update(status="pushed", url=push_to_hub(folder, push["repo_id"], private=push["private"]))
    except TunelabError as error:
        push.update(status="failed", error=error.to_dict())


def start_export(session: Session, sessions: sessionmaker[Session], job_id: str, fmt: str,
                 push: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Queue an export of the completed job ``job_id`` as ``fmt``; returns its record at once.

    ``push`` (``{"repo_id", "private"}``) also uploads the export to the Hub; the repo id is
    checked here, before minutes of conversion.
    """
    from tunelab.export.hub import validate_repo_id

    check_format(fmt)
    target = None
    if push is not None:
        repo_id = validate_repo_id(push.get("repo_id"), field="push_to_hub.repo_id")
        target = {"repo_id": repo_id, "private": bool(push.get("private", True)), "status": "pending", "url": None,
                  "error": None}  # fmt: skip
    run_dir = _run_dir(session, job_id, completed=True)
    folder = _folder(run_dir)
    folder.mkdir(exist_ok=True)
    with _LOCK:
        taken = [int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()]
        export_id = max(taken, default=0) + 1
        record: dict[str, Any] = {
            "id": export_id, "job_id": job_id, "format": fmt, "status": "queued", "stage": "queued",
            "progress": 0.0, "path": f"exports/{export_id}-{fmt}", "size": None, "artifact_id": None,
            "error": None, "push": target, "created_at": _now(), "finished_at": None,
        }  # fmt: skip
        _write(run_dir, record)
        _ACTIVE.add(f"{run_dir}#{export_id}")
    _POOL.submit(_work, sessions, run_dir, dict(record))
    return record


def job_script(session: Session, job_id: str, *, framework: str = "transformers", output_dir: str = "output") -> str:
    """The standalone training script for the job's recorded configuration (its ``config.json``)."""
    from tunelab.export.script import render_script
    from tunelab.training.config import load_config_dict

    config = _run_dir(session, job_id, completed=False) / "config.json"
    if not config.is_file():
        raise NotFound(f"job {job_id} has no recorded configuration yet", "wait until the job has started")
    data = json.loads(config.read_text())
    return render_script(load_config_dict(data), framework=framework, output_dir=output_dir,
                         file_name=f"train_{job_id}.py")  # fmt: skip
