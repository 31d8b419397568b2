"""How an engine run ended, and what that means for the job.

Exit codes are the engine's contract (``tunelab.training.exit_codes``):
0 completed, 1 failed (the last ``failed`` event carries code, message and
hint), 2 invalid config or failed preflight, 75 stopped after saving a
checkpoint. What 75 or a signal death means depends on why we stopped it:

| why stopped          | exit 75 / killed                         |
| -------------------- | ---------------------------------------- |
| user pause           | paused (resume continues the checkpoint) |
| user cancel          | cancelled (checkpoints kept)             |
| timeout              | failed, code ``timeout``                 |
| worker shutting down | queued again, same attempt               |
| nobody (external)    | queued again (75) / failed (crash)       |
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.jobs.events import add_event, set_status
from tunelab.jobs.states import JobStatus
from tunelab.jobs.tailer import record_outputs
from tunelab.store.models import Artifact, Checkpoint, Job, JobEvent, Metric

COMPLETED, FAILED, INVALID_CONFIG, STOPPED = 0, 1, 2, 75


@dataclass
class Outcome:
    status: JobStatus
    error: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _tail(run_dir: Path, lines: int = 20) -> str:
    try:
        text = (run_dir / "engine.out").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def decide_outcome(rc: int, action: str | None, run_dir: Path) -> Outcome:
    """Map (exit code, why we stopped it) to the job's next status and error."""
    extra: dict[str, Any] = {"exit_code": rc}
    if action == "cancel":
        return Outcome(JobStatus.CANCELLED, extra=extra)
    if action == "timeout":
        error = {
            "code": "timeout",
            "message": "the job ran longer than its timeout and was stopped",
            "hint": "raise timeout_s or lower max_steps; its checkpoints are kept",
        }
        return Outcome(JobStatus.FAILED, error=error, extra=extra)
    if rc == COMPLETED:
        return Outcome(JobStatus.COMPLETED, extra=extra)
    if rc == STOPPED:
        return Outcome(JobStatus.PAUSED if action == "pause" else JobStatus.QUEUED, extra=extra)
    if rc in (FAILED, INVALID_CONFIG):
        default_code = "config_invalid" if rc == INVALID_CONFIG else "training_failed"
        return Outcome(JobStatus.FAILED, error={"code": default_code}, extra=extra)
    error = {
        "code": "engine_crashed",
        "message": f"the training process ended with exit code {rc}",
        "hint": "see the log below and train.log; out of memory is the usual cause",
        "log_tail": _tail(run_dir),
    }
    return Outcome(JobStatus.FAILED, error=error, extra=extra)


def _complete_error(job: Job, error: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Fill an engine failure's code/message/hint from its last ``failed`` event."""
    failure = dict((job.tail_state or {}).get("failure") or {})
    out = {
        "code": failure.get("code") or error.get("code"),
        "message": failure.get("message") or "training failed",
        "hint": failure.get("hint") or "see the job's logs (train.log) for details",
    }
    if not failure:
        out["log_tail"] = _tail(run_dir)
    return out


def finish(session: Session, job: Job, outcome: Outcome, run_dir: Path) -> None:
    """Apply the outcome: outputs and results on success, then the status change."""
    error = outcome.error
    if error is not None and error.get("code") in ("training_failed", "config_invalid"):
        error = _complete_error(job, error, run_dir)
    if JobStatus(outcome.status).is_terminal() and (job.save_options or {}).get("save_model") is False:
        discard_weights(session, job, run_dir)
    if outcome.status == JobStatus.COMPLETED:
        record_outputs(session, job, run_dir)
        _record_results(session, job, run_dir)
        job.progress = 1.0
    elif outcome.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        record_outputs(session, job, run_dir)
    set_status(session, job, outcome.status, error=error, **outcome.extra)
    if outcome.status in (JobStatus.QUEUED, JobStatus.PAUSED):
        job.requested_action = None


#: What counts as weights: the engine's and transformers' tensor files, in output/ and checkpoints.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".npz", ".h5", ".msgpack")


def discard_weights(session: Session, job: Job, run_dir: Path) -> int:
    """``saveModel: false``: keep no weights once the job has ended; returns the files removed.

    The engine needs its checkpoints while it trains (pause, resume, recovery
    after a lost worker), so weights are removed when the job ends, not
    skipped while it runs: every checkpoint folder, and every tensor file under
    ``output/`` (the adapter or full weights, ``merged/``). The tokenizer,
    ``summary.json``, ``evaluation.json`` and the logs stay. The job's
    checkpoint rows go too, and an ``event`` says what was removed.
    """
    removed = 0
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir():
        removed += sum(1 for p in checkpoints.rglob("*") if p.is_file())
        shutil.rmtree(checkpoints, ignore_errors=True)
    output = run_dir / "output"
    if output.is_dir():
        for path in sorted(output.rglob("*")):
            if path.is_file() and path.suffix.lower() in WEIGHT_SUFFIXES:
                path.unlink(missing_ok=True)
                removed += 1
        merged = output / "merged"
        if merged.is_dir():
            shutil.rmtree(merged, ignore_errors=True)
    session.query(Checkpoint).filter(Checkpoint.job_id == job.id).delete()
    stale = [a for a in session.scalars(select(Artifact).where(Artifact.job_id == job.id))
             if not (run_dir / a.path).exists()]  # fmt: skip
    for artifact in stale:
        session.delete(artifact)
    add_event(session, job.id, "event", {
        "time": time.time(), "type": "weights_discarded",
        "message": f"saveModel is false: removed {removed} weight and checkpoint files",
        "data": {"files": removed},
    })  # fmt: skip
    return removed


def _final_metrics(session: Session, job: Job) -> dict[str, Any]:
    """The last loss and eval loss; without logged evals, the engine's end-of-run tuned eval loss.

    A job with the default ``eval_steps: 0`` logs no eval line but measures the
    tuned model at the end (an ``eval`` event), which then ranks its configuration.
    """
    rows = session.scalars(select(Metric).where(Metric.job_id == job.id).order_by(Metric.step))
    final: dict[str, Any] = {}
    for row in rows:
        for key in ("loss", "eval_loss"):
            value = getattr(row, key)
            if value is not None:
                final[key] = value
    if "eval_loss" not in final:
        query = select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.type == "event").order_by(JobEvent.id.desc())
        for event in session.scalars(query):
            data = event.data or {}
            detail = data.get("data") or {}
            if data.get("type") == "eval" and detail.get("model") == "tuned" and isinstance(detail.get("eval_loss"), int | float):
                final["eval_loss"] = float(detail["eval_loss"])
                break
    return final


def _record_results(session: Session, job: Job, run_dir: Path) -> None:
    """Rank the configuration by its eval loss; add the tuned model to the collection if asked."""
    from tunelab.jobs.configurations import record_result
    from tunelab.store.catalog import add_model

    metrics = _final_metrics(session, job)
    if metrics:
        row = record_result(session, job.config, metrics, job_id=job.id,
                            configuration_id=job.configuration_id, commit=False)  # fmt: skip
        job.configuration_id = row.id
    options = job.save_options or {}
    if options.get("save_model", True):
        output = run_dir / "output"
        location = next((p for p in (output / "adapter", output / "merged", output) if p.is_dir()), output)
        add_model(
            session,
            options.get("model_name") or f"{job.id}-tuned",
            source="job",
            location=str(location),
            info={"job_id": job.id, "base_model": job.config.get("model"), **metrics},
            commit=False,
        )
