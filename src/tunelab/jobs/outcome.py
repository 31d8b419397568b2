"""How an engine run ended, and what that means for the job.

Exit codes are the engine's contract (``tunelab.training.exit_codes``):
0 completed, 1 failed (the last ``failed`` event carries code, message and
hint), 2 invalid config or failed preflight, 75 stopped after saving a
checkpoint. What 75 or a signal death means depends on why we stopped it:

| why stopped          | exit 75                    | killed / crashed                             |
| -------------------- | -------------------------- | -------------------------------------------- |
| user pause           | paused (resume continues)  | paused (killed after no progress)            |
| user cancel          | cancelled                  | cancelled (checkpoints kept)                 |
| timeout              | failed, code ``timeout``   | failed, code ``timeout``                     |
| worker shutting down | queued, same attempt       | queued, next attempt                         |
| nobody               | queued, same attempt       | queued, next attempt                         |

A crash with no attempt left fails the job with ``engine_crashed``.

"Killed" is a signal death (SIGKILL from the out-of-memory killer, a
segfault) or any exit code outside the contract. A requeued job resumes from
its newest valid checkpoint (the engine verifies each checkpoint's manifest).
An engine that failed with ``disk_full`` leaves the job paused with that error:
free the space and resume.
"""

from __future__ import annotations

import shutil
import signal
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
    crashed: bool = False  # the engine died without a clean exit: requeue while attempts remain


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
    how = describe_exit(rc)
    if action == "pause":  # the worker killed it after it made no progress; the user asked for a pause
        return Outcome(JobStatus.PAUSED, extra={**extra, "killed": how})
    error = {
        "code": "engine_crashed",
        "message": f"the training process {how}",
        "hint": "see the log below and train.log; out of memory is the usual cause",
        "log_tail": _tail(run_dir),
    }
    return Outcome(JobStatus.FAILED, error=error, extra=extra, crashed=True)


def describe_exit(rc: int) -> str:
    """``was killed by SIGKILL`` or ``ended with exit code 3``."""
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"was killed by {name}"
    return f"ended with exit code {rc}"


def _crash_retry(session: Session, job: Job, outcome: Outcome) -> Outcome:
    """A crashed engine's job is queued again while attempts remain (it resumes from a checkpoint)."""
    if job.attempts >= job.max_attempts:
        error = dict(outcome.error or {})
        error["message"] = f"{error.get('message', 'the training process crashed')} "\
            f"(attempt {job.attempts} of {job.max_attempts}, none left)"
        return Outcome(JobStatus.FAILED, error=error, extra=outcome.extra)
    job.attempts += 1
    message = (f"{(outcome.error or {}).get('message', 'the training process crashed')}; queued again "
               f"(attempt {job.attempts} of {job.max_attempts}) to resume from the newest valid checkpoint")
    add_event(session, job.id, "event", {"time": time.time(), "type": "engine_crashed", "message": message,
                                         "data": {"exit_code": outcome.extra.get("exit_code"),
                                                  "attempt": job.attempts}})
    return Outcome(JobStatus.QUEUED, extra={**outcome.extra, "reason": "engine crashed",
                                            "attempt": job.attempts})


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


def finish(session: Session, job: Job, outcome: Outcome, run_dir: Path, *, local_model: bool = True) -> None:
    """Apply the outcome: outputs and results on success, then the status change.

    ``local_model`` False (a remote provider kept the tuned model, ``tunelab.providers``):
    the configuration is still ranked, but no collection entry points at weights that are not here.
    """
    if outcome.crashed:
        outcome = _crash_retry(session, job, outcome)
    error = outcome.error
    if error is not None and error.get("code") in ("training_failed", "config_invalid"):
        error = _complete_error(job, error, run_dir)
        if error.get("code") == "disk_full":  # nothing is lost: free the space, resume
            outcome = Outcome(JobStatus.PAUSED, extra=outcome.extra)
    if JobStatus(outcome.status).is_terminal() and (job.save_options or {}).get("save_model") is False:
        discard_weights(session, job, run_dir)
    if outcome.status == JobStatus.COMPLETED:
        record_outputs(session, job, run_dir)
        _record_results(session, job, run_dir, local_model=local_model)
        job.progress = 1.0
    elif outcome.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        record_outputs(session, job, run_dir)
    set_status(session, job, outcome.status, error=error, **outcome.extra)
    if outcome.status in (JobStatus.QUEUED, JobStatus.PAUSED):
        job.requested_action = None
    job.tail_state = {**(job.tail_state or {}), "stopping": None}


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


def _record_results(session: Session, job: Job, run_dir: Path, *, local_model: bool = True) -> None:
    """Rank the configuration by its eval loss; add the tuned model to the collection if asked (and here)."""
    from tunelab.jobs.configurations import record_result
    from tunelab.store.catalog import add_model, tuned_model_id

    metrics = _final_metrics(session, job)
    if metrics:
        row = record_result(session, job.config, metrics, job_id=job.id,
                            configuration_id=job.configuration_id, commit=False)  # fmt: skip
        job.configuration_id = row.id
    options = job.save_options or {}
    if options.get("save_model", True) and local_model:
        output = run_dir / "output"
        location = next((p for p in (output / "adapter", output / "merged", output) if p.is_dir()), output)
        add_model(
            session,
            options.get("model_name") or tuned_model_id(str(job.config.get("model") or ""), job.name, job.id),
            name=job.name or "",
            source="job",
            location=str(location),
            info={"job_id": job.id, "base_model": job.config.get("model"), **metrics},
            commit=False,
        )
