"""``python -m tunelab.training RUN_DIR``: run the config in RUN_DIR, exit with a code.

This is the job worker's entry point; see ``exit_codes`` for the meaning of the
exit status, also written to ``RUN_DIR/exit.json`` as the engine exits. Progress goes
to the run directory; one line per event to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tunelab.training import exit_codes


class _StderrReporter:
    def on_event(self, event: dict[str, Any]) -> None:
        print(f"[{event['type']}] {event['message']}", file=sys.stderr, flush=True)

    def on_metrics(self, metrics: dict[str, Any]) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tunelab.training RUN_DIR", file=sys.stderr)
        return exit_codes.INVALID_CONFIG
    run_dir = Path(args[0])
    from tunelab.errors import TunelabError
    from tunelab.training.config import load_config_dict
    from tunelab.training.rundir import RunFiles

    try:
        data = json.loads((run_dir / "config.json").read_text())
        config = load_config_dict(data)
    except (OSError, json.JSONDecodeError, TunelabError) as exc:
        error = exc.to_dict() if isinstance(exc, TunelabError) else {
            "code": "config_invalid", "message": f"Cannot read {run_dir / 'config.json'}: {exc}",
            "hint": "Write a TrainConfig as JSON to RUN_DIR/config.json."}
        run_dir.mkdir(parents=True, exist_ok=True)
        files = RunFiles(run_dir)
        files.event("failed", error["message"], error)
        files.close()
        print(f"error: {error['message']}", file=sys.stderr)
        return exit_codes.INVALID_CONFIG
    import contextlib
    import time

    from tunelab.training.distributed import is_main
    from tunelab.training.run import run_training
    from tunelab.training.rundir import EXIT, write_json

    result = run_training(config, run_dir, _StderrReporter())
    # exit.json: how this run ended, for a worker that was not there to see the exit code (rank 0's, under torchrun).
    with contextlib.suppress(OSError):
        if is_main():
            write_json(run_dir / EXIT, {"time": time.time(), "exit_code": result.exit_code,
                                        "step": result.global_step, "status": result.status})
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
