"""From a job's ``{model, dataset, hyperparameters}`` to the engine's TrainConfig.

The API speaks in studio terms (a stored dataset version id or name, a model
from the collection, a flat dict of hyperparameters); the engine only knows
files. This module is the translation, used twice: at job creation to reject a
bad configuration with 422 before it is queued, and by the worker to write the
run directory's ``config.json``. Datasets (``dataset`` and ``eval_dataset``)
are resolved by the dataset service, the one registry of stored datasets.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tunelab.errors import ConfigError
from tunelab.jobs import datasets
from tunelab.store.models import ModelEntry


def normalise_job_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check the outer shape and return ``{model, dataset, hyperparameters}``."""
    if not isinstance(config, dict):
        raise ConfigError(
            "the job configuration must be an object", "send {model, dataset, hyperparameters}"
        )
    unknown = sorted(set(config) - {"model", "dataset", "hyperparameters"})
    problems = [f"unknown field `{key}`" for key in unknown]
    if not config.get("model"):
        problems.append("`model` is required")
    if not config.get("dataset"):
        problems.append(
            "`dataset` is required (a stored dataset version id, a dataset name or a path)"
        )
    hyper = config.get("hyperparameters") or {}
    if not isinstance(hyper, dict):
        problems.append("`hyperparameters` must be an object")
    if problems:
        raise ConfigError(
            "Invalid job configuration: " + "; ".join(problems),
            "send {model, dataset, hyperparameters: {...}}; hyperparameters are TrainConfig fields",
            details={"errors": problems},
        )
    return {
        "model": str(config["model"]),
        "dataset": str(config["dataset"]),
        "hyperparameters": dict(hyper),
    }


def resolve_model(session: Session, model: str) -> str:
    """A model from the user's collection -> its location; anything else goes to the catalog."""
    entry = session.get(ModelEntry, model)
    if entry is not None and entry.location:
        return entry.location
    return model


def build_train_config(
    session: Session, config: dict[str, Any], *, name: str = "run"
) -> dict[str, Any]:
    """The TrainConfig dict (validated) for a job configuration; raises ConfigError."""
    from tunelab.training.config import load_config_dict

    config = normalise_job_config(config)
    data = dict(config["hyperparameters"])
    data["model"] = resolve_model(session, config["model"])
    data["dataset"] = datasets.resolve(session, config["dataset"])
    if isinstance(data.get("eval_dataset"), str) and data["eval_dataset"]:
        data["eval_dataset"] = datasets.resolve(session, data["eval_dataset"])
    data.setdefault("name", name[:100] or "run")
    return load_config_dict(data).model_dump(mode="json")


def validate_job_config(session: Session, config: dict[str, Any]) -> dict[str, Any]:
    """Normalise and validate now, so a job that cannot start is refused at creation."""
    normalised = normalise_job_config(config)
    build_train_config(session, normalised)
    return normalised
