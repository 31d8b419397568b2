"""``tunelab train`` for a config with a ``distributed`` block: torchrun, then the run's own record.

The ranks run in child processes (``tunelab.training.launch``), so the result
is read back from the run directory rank 0 wrote: ``exit.json`` for how it
ended, ``output/summary.json`` and ``evaluation.json`` for the summary, the
last ``failed`` event for an error. Progress lines are rank 0's events on
stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from tunelab.training import exit_codes


def run_distributed(console: Any, config: Any, run_dir: Path, *, print_only: bool) -> Any | None:
    """Print the torchrun command (``print_only``) or run it; the run's TrainResult, None when only printed."""
    from tunelab.training.distributed import printable_command
    from tunelab.training.launch import launch

    settings = config.distributed
    if print_only:
        if not settings.enabled:
            console.print(
                "This config trains in one process (`distributed.strategy: none`); run "
                f"`python -m tunelab.training {run_dir}` or drop --print-command.",
                soft_wrap=True,
            )
            return None
        console.print(printable_command(settings, run_dir), soft_wrap=True, highlight=False)
        if settings.nnodes > 1:
            console.print(
                f"Run it on each of the {settings.nnodes} nodes with its own `--node-rank` "
                f"(0 to {settings.nnodes - 1}); node 0 is {settings.master_addr}.",
                soft_wrap=True,
            )
        return None
    console.print(
        f"Launching {settings.world_size} processes ({settings.strategy}) with torchrun",
        soft_wrap=True,
    )
    try:
        code = launch(run_dir, settings)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    return read_result(run_dir, code)


def read_result(run_dir: Path, code: int) -> Any:
    """A ``TrainResult`` from what rank 0 left in ``run_dir`` after exiting with ``code``."""
    from tunelab.training.run import TrainResult
    from tunelab.training.rundir import EXIT, read_json

    step = int((read_json(run_dir / EXIT) or {}).get("step") or 0)
    if code == exit_codes.COMPLETED:
        output = run_dir / "output"
        summary = read_json(output / "summary.json") or {}
        return TrainResult(
            "completed", code, run_dir, step, output, summary, read_json(output / "evaluation.json")
        )
    if code == exit_codes.STOPPED:
        return TrainResult("stopped", code, run_dir, step)
    error = _last_failure(run_dir) or {
        "code": "training_failed", "message": f"the training processes ended with exit code {code}",
        "hint": f"see {run_dir / 'train.log'} and train-rank*.log there",
    }  # fmt: skip
    status = "invalid" if code == exit_codes.INVALID_CONFIG else "failed"
    return TrainResult(status, code, run_dir, step, error=error)


def _last_failure(run_dir: Path) -> dict[str, Any] | None:
    """The data of the last ``failed`` event in events.jsonl (code, message, hint)."""
    try:
        lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("type") == "failed":
            data = event.get("data") or {}
            return {"code": data.get("code", "training_failed"), "message": event.get("message", ""),
                    "hint": data.get("hint", "")}  # fmt: skip
    return None
