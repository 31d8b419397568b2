"""``run_training``: the one entry point used by the module runner and the CLI.

It never raises for run failures: every outcome becomes a ``TrainResult`` with the
worker's exit code, and failures also become a ``failed`` event with code, message
and hint in events.jsonl, so the job worker and the CLI see the same thing.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError
from tunelab.training import exit_codes
from tunelab.training.config import TrainConfig
from tunelab.training.rundir import Reporter, RunFiles


@dataclass
class TrainResult:
    """How a run ended and where its results are."""

    status: str  # completed | stopped | failed | invalid
    exit_code: int
    run_dir: Path
    global_step: int = 0
    output_dir: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def run_training(config: TrainConfig, run_dir: Path, reporter: Reporter | None = None) -> TrainResult:
    """Train (or resume) the run in ``run_dir``; report through files and ``reporter``."""
    from tunelab.training.distributed import rank_files
    from tunelab.training.output import evaluate_base
    from tunelab.training.runner import Recipe, _failure_code
    from tunelab.training.stopping import StopSignal
    from tunelab.training.trackers import TrackerReporter, with_tracker

    run_dir = Path(run_dir)
    files: RunFiles = rank_files(run_dir, reporter)  # under torchrun, rank 0 alone writes the run files
    files.reporter = tracker = with_tracker(config, files, reporter)
    stop = StopSignal(files)
    stop.install()
    recipe = Recipe(config, files, stop)
    try:
        recipe.setup()
        with recipe.parallel.gathered(recipe.parallel.config.output.evaluate):  # FSDP: rank 0 needs it whole
            evaluate_base(recipe)
        code = recipe.train()
        step = recipe.state["global_step"]
        if code == exit_codes.STOPPED:
            return TrainResult("stopped", code, run_dir, step)
        result = recipe.finish()
        files.event("completed", f"training completed at step {step}", result["summary"])
        return TrainResult("completed", code, run_dir, step, files.output, result["summary"], result["evaluation"])
    except Exception as exc:
        code = _failure_code(exc)
        if isinstance(exc, TunelabError):
            error = exc.to_dict()
        else:
            error = {"code": "training_error", "message": f"{type(exc).__name__}: {exc}",
                     "hint": "See train.log for the traceback; lower batch_size or max_length if memory ran out."}
            files.log.error("traceback:\n%s", traceback.format_exc())
        files.event("failed", error["message"], error)
        status = "invalid" if code == exit_codes.INVALID_CONFIG else "failed"
        return TrainResult(status, code, run_dir, recipe.state["global_step"], error=error)
    except KeyboardInterrupt:  # a second Ctrl-C: abort now, resumable from the last checkpoint
        files.event("failed", "aborted by a second interrupt", {"code": "interrupted", "message": "aborted",
                                                                "hint": "Run again to resume from the last checkpoint."})
        raise
    finally:
        stop.uninstall()
        if isinstance(tracker, TrackerReporter):
            tracker.close()
        files.close()
