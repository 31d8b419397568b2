"""Saved configurations with a stable id, and "best for this model and dataset".

The id is a hash of the canonical JSON of ``{model, dataset, hyperparameters}``
(sorted keys, no spaces), so saving the same configuration twice gives the
same id and a configuration can be referenced from scripts and sweeps.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.errors import NotFound
from tunelab.jobs.trainconfig import normalise_job_config
from tunelab.store.models import Configuration


def configuration_id(config: dict[str, Any]) -> str:
    """``cfg-`` + the first 16 hex digits of SHA-256 over the canonical JSON."""
    canonical = json.dumps(normalise_job_config(config), sort_keys=True, separators=(",", ":"))
    return "cfg-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def save_configuration(
    session: Session, config: dict[str, Any], *, name: str = "", commit: bool = True
) -> Configuration:
    """Save (or find) a configuration; the same content always gets the same id."""
    config = normalise_job_config(config)
    config_id = configuration_id(config)
    row = session.get(Configuration, config_id)
    if row is None:
        row = Configuration(
            id=config_id,
            name=name,
            model=config["model"],
            dataset=config["dataset"],
            hyperparameters=config["hyperparameters"],
        )
        session.add(row)
    elif name:
        row.name = name
    if commit:
        session.commit()
    else:
        session.flush()
    return row


def get_configuration(session: Session, config_id: str) -> Configuration:
    row = session.get(Configuration, config_id)
    if row is None:
        raise NotFound(f"no configuration {config_id!r}", "list configurations first")
    return row


def list_configurations(
    session: Session, *, model: str | None = None, dataset: str | None = None
) -> list[Configuration]:
    query = select(Configuration)
    if model:
        query = query.where(Configuration.model == model)
    if dataset:
        query = query.where(Configuration.dataset == dataset)
    return list(session.scalars(query.order_by(Configuration.created_at)))


def record_result(
    session: Session,
    config: dict[str, Any],
    metrics: dict[str, Any],
    *,
    job_id: str,
    commit: bool = True,
) -> Configuration:
    """Attach a finished job's eval metrics; keeps the best (lowest eval loss) result."""
    row = save_configuration(session, config, commit=commit)
    eval_loss = metrics.get("eval_loss")
    if isinstance(eval_loss, int | float) and (row.eval_loss is None or eval_loss < row.eval_loss):
        row.eval_loss = float(eval_loss)
        row.metrics = dict(metrics)
        row.job_id = job_id
    if commit:
        session.commit()
    return row


def best_configuration(session: Session, model: str, dataset: str) -> Configuration:
    """The configuration with the lowest eval loss for this model and dataset."""
    query = (
        select(Configuration)
        .where(
            Configuration.model == model,
            Configuration.dataset == dataset,
            Configuration.eval_loss.is_not(None),
        )
        .order_by(Configuration.eval_loss)
    )
    row = session.scalars(query).first()
    if row is None:
        raise NotFound(
            f"no evaluated configuration for model {model!r} and dataset {dataset!r}",
            "run a job with an eval split; its eval loss ranks the configuration",
        )
    return row
