"""Our rows in OpenAI's object shapes (``file``, ``fine_tuning.job``, ``...event``, ``list``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tunelab.training.methods import ADAPTER_LEARNING_RATE

# tunelab status -> OpenAI status (OpenAI has no 'created'; paused is theirs too)
STATUS = {
    "created": "validating_files",
    "queued": "queued",
    "running": "running",
    "paused": "paused",
    "completed": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


def unix(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def list_object(data: list[dict[str, Any]], *, has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more}


def file_object(dataset: Any, size: int) -> dict[str, Any]:
    """A dataset uploaded through /v1/files; ``size`` is the uploaded file's byte count."""
    return {
        "id": dataset.name,
        "object": "file",
        "bytes": size,
        "created_at": unix(dataset.created_at),
        "filename": dataset.description or dataset.name,
        "purpose": "fine-tune",
        "status": "processed",
        "status_details": None,
    }


def _hyperparameters(config: dict[str, Any]) -> dict[str, Any]:
    hyper = config.get("hyperparameters") or {}
    return {
        "n_epochs": hyper.get("epochs", "auto"),
        "batch_size": hyper.get("batch_size", "auto"),
        "learning_rate_multiplier": (
            hyper["learning_rate"] / ADAPTER_LEARNING_RATE if isinstance(hyper.get("learning_rate"), int | float) else "auto"
        ),
    }


def job_object(job: Any, trained_tokens: int | None = None) -> dict[str, Any]:
    """A job as OpenAI's ``fine_tuning.job``; ``trained_tokens`` is what the engine counted, if it ran."""
    config = job.config or {}
    hyper = _hyperparameters(config)
    error = None
    if job.error:
        error = {"code": job.error.get("code", "error"), "message": job.error.get("message", ""),
                 "param": job.error.get("param")}  # fmt: skip
    options = job.save_options or {}
    done = job.status == "completed"
    return {
        "id": job.id,
        "object": "fine_tuning.job",
        "created_at": unix(job.created_at),
        "finished_at": unix(job.finished_at),
        "error": error,
        "fine_tuned_model": (f"{config.get('model')}:{options.get('model_name') or 'ft'}:{job.id}" if done else None),
        "hyperparameters": hyper,
        "model": config.get("model"),
        "organization_id": "tunelab",
        "result_files": [],
        "seed": (config.get("hyperparameters") or {}).get("seed", 42),
        "status": STATUS.get(job.status, job.status),
        "trained_tokens": trained_tokens,
        "training_file": config.get("dataset"),
        "validation_file": (config.get("hyperparameters") or {}).get("eval_dataset"),
        "estimated_finish": None,
        "integrations": [],
        "metadata": options.get("metadata") or None,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
        "user_provided_suffix": options.get("model_name"),
    }


def _message(event: Any) -> tuple[str, str, str]:
    """(level, message, type) for one job event."""
    data = event.data or {}
    if event.type == "status":
        status = data.get("status", "")
        level = "error" if status == "failed" else "info"
        text = f"Job status changed to {STATUS.get(status, status)}"
        if data.get("error"):
            text += f": {data['error'].get('message', '')}"
        return level, text, "message"
    if event.type == "metrics":
        parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in data.items()
                 if k in ("loss", "eval_loss", "learning_rate", "grad_norm") and v is not None]  # fmt: skip
        return "info", f"Step {data.get('step')}: " + ", ".join(parts), "metrics"
    if event.type == "log":
        line = str(data.get("line", data.get("message", "")))
        return ("error" if "Error" in line or "Traceback" in line else "info"), line, "message"
    kind = data.get("type", event.type)
    level = "warn" if data.get("level") in ("warn", "warning") else "info"
    return level, str(data.get("message") or kind), "message"


def event_object(event: Any) -> dict[str, Any]:
    level, message, kind = _message(event)
    return {
        "id": str(event.id),
        "object": "fine_tuning.job.event",
        "created_at": unix(event.created_at),
        "level": level,
        "message": message,
        "data": {"type": event.type, **(event.data or {})},
        "type": kind,
    }
