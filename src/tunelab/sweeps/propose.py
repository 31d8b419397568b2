"""Automated mode: from a model, a dataset and a budget, propose the ranges to search, with reasons.

The bands are the dashboard guide's: the learning rate by model size
(``training.methods.LEARNING_RATE_BANDS``) and
the epochs by dataset size (1-3 above 10k rows, 3-5 for 1k-10k, 5-10 under
1k). Adapter methods also search the LoRA rank. Every choice comes with the
sentence that explains it, which the dashboard and ``tunelab sweep --auto``
show before the sweep runs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tunelab.jobs.paths import LOCAL, PathAccess

BILLION = 1_000_000_000
#: Rows counted at most (a bigger dataset is simply "more than this").
MAX_COUNT = 100_000


def learning_rate_band(parameters: int | None) -> tuple[float, float, str]:
    from tunelab.training.methods import LEARNING_RATE_BANDS

    (big, big_low, big_high), (mid, mid_low, mid_high), (_, low, high) = LEARNING_RATE_BANDS
    if parameters is None:
        return low, high, "the model's size is unknown, so the band for models under 1B is used"
    size = f"{parameters / BILLION:.2f}B" if parameters >= BILLION / 100 else f"{parameters:,} parameters"
    if parameters >= big:
        return big_low, big_high, f"the model has {size} (7B or more): large models need small steps"
    if parameters >= mid:
        return mid_low, mid_high, f"the model has {size} (1B to 7B)"
    return low, high, f"the model has {size} (under 1B): small models take larger steps"


def epochs_band(rows: int) -> tuple[int, int, str]:
    if rows > 10_000:
        return 1, 3, f"{rows:,} rows (more than 10k): one to three passes are enough"
    if rows >= 1_000:
        return 3, 5, f"{rows:,} rows (1k to 10k)"
    return 5, 10, f"{rows:,} rows (under 1k): small datasets need more passes"


def _model_parameters(session: Session, model: str, paths: PathAccess) -> int | None:
    from tunelab.errors import TunelabError
    from tunelab.jobs.trainconfig import resolve_model
    from tunelab.models import model_info

    try:
        return model_info(resolve_model(session, model, paths=paths)).parameters
    except TunelabError:
        return None


def _dataset_rows(session: Session, dataset: str, paths: PathAccess) -> int:
    from tunelab.datasets import iter_records
    from tunelab.jobs import datasets

    path = datasets.resolve(session, dataset, paths=paths, field="dataset")
    count = 0
    for _ in iter_records(path):
        count += 1
        if count >= MAX_COUNT:
            break
    return count


def propose(
    session: Session,
    model: str,
    dataset: str,
    *,
    n_trials: int | None = None,
    budget_minutes: float | None = None,
    hyperparameters: dict[str, Any] | None = None,
    paths: PathAccess = LOCAL,
) -> dict[str, Any]:
    """A complete sweep request (``SweepConfig`` fields) and one explanation per choice."""
    from tunelab.training.methods import get as method_spec

    hyper = dict(hyperparameters or {})
    parameters = _model_parameters(session, model, paths)
    rows = _dataset_rows(session, dataset, paths)
    low, high, lr_reason = learning_rate_band(parameters)
    e_low, e_high, e_reason = epochs_band(rows)
    search: dict[str, Any] = {"learning_rate": {"low": low, "high": high, "log": True}}
    explain = [{"field": "learning_rate", "choice": f"{low:g} to {high:g}, log scale", "reason": lr_reason}]
    if "max_steps" in hyper:
        explain.append({"field": "epochs", "choice": "not searched",
                        "reason": "`max_steps` is set, and it overrides epochs"})  # fmt: skip
    else:
        search["epochs"] = {"low": e_low, "high": e_high}
        explain.append({"field": "epochs", "choice": f"{e_low} to {e_high}", "reason": e_reason})
    if method_spec(str(hyper.get("method", "lora"))).uses_lora_settings:
        search["lora.r"] = {"choices": [8, 16, 32]}
        explain.append({"field": "lora.r", "choice": "8, 16 or 32",
                        "reason": "the usual adapter ranks; higher learns more and costs more memory"})  # fmt: skip
    if n_trials is None and budget_minutes is None:
        n_trials = 10
    sampler = "tpe"
    explain.append({"field": "sampler", "choice": "tpe",
                    "reason": "Bayesian search (TPE) spends later trials near the best values found so far"})  # fmt: skip
    budget = f"{n_trials} trials" if n_trials else f"{budget_minutes:g} minutes"
    explain.append({"field": "budget", "choice": budget,
                    "reason": "what was asked for" if (n_trials or budget_minutes) else "ten trials by default"})  # fmt: skip
    sweep = {
        "name": "", "model": model, "dataset": dataset, "hyperparameters": hyper, "search": search,
        "sampler": sampler, "objective": "eval_loss", "direction": "minimize",
        "n_trials": n_trials, "budget_minutes": budget_minutes,
    }  # fmt: skip
    return {"sweep": sweep, "explanations": explain, "model_parameters": parameters, "dataset_rows": rows}
