"""``python -m tunelab.training.launch RUN_DIR``: run a distributed config through torchrun, exit like the engine.

The job worker and ``tunelab train`` start this instead of the engine when the
config's ``distributed.strategy`` is not ``none``. It runs the command of
``distributed.torchrun_command`` and turns torchrun's exit status back into
the engine's (``exit_codes``): torchrun reports any rank's non-zero exit,
including a checkpointed stop (75), as its own failure (1), so the code rank 0
wrote to ``RUN_DIR/exit.json`` during this launch is the answer when there is
one. A rank that died without writing it leaves torchrun's status.

SIGTERM and SIGINT reach torchrun and the ranks through the process group;
this launcher only waits for them. torchrun then gives the ranks
``TORCH_ELASTIC_SHUTDOWN_TIMEOUT`` seconds to finish the step and save before
it kills them: 30 by torch's default, ``SHUTDOWN_TIMEOUT_S`` here unless set,
since a checkpoint of a large model takes longer (the worker still kills an
engine that shows no progress). A pause is the ``control`` file, which needs
no signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tunelab.training import exit_codes
from tunelab.training.config import DistributedSettings
from tunelab.training.rundir import EXIT, read_json

#: Seconds torchrun waits for the ranks to stop cleanly after a signal (torch's default is 30).
SHUTDOWN_TIMEOUT_S = 600


def launch(run_dir: Path, settings: DistributedSettings | None = None) -> int:
    """Run the config in ``run_dir`` on this node's ranks and return the engine's exit code.

    ``settings`` (the CLI's, which may resume with another process count) win
    over the ``distributed`` block of RUN_DIR/config.json.
    """
    from tunelab.training.distributed import torchrun_command

    run_dir = Path(run_dir)
    if settings is None:
        try:
            block = json.loads((run_dir / "config.json").read_text()).get("distributed") or {}
            settings = DistributedSettings.model_validate(block)
        except (OSError, ValueError) as exc:
            print(f"error: cannot read {run_dir / 'config.json'}: {exc}", file=sys.stderr)
            return exit_codes.INVALID_CONFIG
    (run_dir / EXIT).unlink(missing_ok=True)
    started = time.time()
    env = {**os.environ}
    env.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", str(SHUTDOWN_TIMEOUT_S))
    proc = subprocess.Popen(torchrun_command(settings, run_dir.resolve()), env=env)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        rc = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return engine_exit_code(rc, run_dir, started)


def engine_exit_code(rc: int, run_dir: Path, since: float) -> int:
    """torchrun's status, or the engine's own code from an exit.json written after ``since``."""
    if rc == 0:
        return exit_codes.COMPLETED
    written = read_json(run_dir / EXIT) or {}
    code = written.get("exit_code")
    if isinstance(code, int) and float(written.get("time", 0)) >= since:
        return code
    return rc if rc > 0 else exit_codes.FAILED


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tunelab.training.launch RUN_DIR", file=sys.stderr)
        return exit_codes.INVALID_CONFIG
    return launch(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
