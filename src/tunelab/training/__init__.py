"""tunelab.training: the fine-tuning engine.

Public API (heavy libraries load only when training starts)::

    from tunelab.training import TrainConfig, run_training, preflight
    result = run_training(TrainConfig(dataset="data.json"), Path("runs/demo"))

``python -m tunelab.training RUN_DIR`` runs ``RUN_DIR/config.json``; see
``exit_codes`` for how it ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunelab.training.config import TrainConfig, load_config_dict
from tunelab.training.preflight import Issue, preflight
from tunelab.training.rundir import Reporter

if TYPE_CHECKING:
    from tunelab.training.run import TrainResult, run_training

__all__ = ["Issue", "Reporter", "TrainConfig", "TrainResult", "load_config_dict", "preflight", "run_training"]


def __getattr__(name: str) -> Any:
    if name in ("run_training", "TrainResult"):
        from tunelab.training import run

        return getattr(run, name)
    raise AttributeError(name)
