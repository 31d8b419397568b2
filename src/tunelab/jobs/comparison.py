"""Which hyperparameters set several jobs apart, for ``POST /api/jobs/compare`` and the compare page.

A job stores only what its creator sent; two jobs that differ only in what
one left at its default would look alike field by field, or unlike where one
spelled a default out. So each job's configuration is read the way the engine
reads it (``TrainConfig``, defaults filled in) and flattened to dotted names
(``lora.r``, ``output.evaluate``); a name is *differing* when the jobs do not
all hold the same value. A stored configuration the current schema refuses
(written by an older version) is shown as stored rather than failing the
comparison.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tunelab.store.models import Job

#: Fields that label a run rather than configure it.
LABELS = ("name",)


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"lora": {"r": 8}}`` -> ``{"lora.r": 8}``; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def hyperparameters(job: Job) -> dict[str, Any]:
    """The job's effective configuration (model, dataset and every TrainConfig field) as dotted names."""
    from pydantic import ValidationError

    from tunelab.training.config import TrainConfig

    config = job.config or {}
    stated = {
        "model": config.get("model"),
        "dataset": config.get("dataset"),
        **(config.get("hyperparameters") or {}),
    }
    try:
        effective = TrainConfig.model_validate(stated).model_dump(mode="json")
    except (ValidationError, ValueError, TypeError):
        effective = stated
    return {k: v for k, v in flatten(effective).items() if k.split(".")[0] not in LABELS}


def differing(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Names whose value is not the same in every configuration (a missing name counts as a value)."""
    names = sorted({name for config in configs for name in config})
    missing = object()

    def key(value: Any) -> str:
        return "<missing>" if value is missing else json.dumps(value, sort_keys=True, default=str)

    return [n for n in names if len({key(config.get(n, missing)) for config in configs}) > 1]
