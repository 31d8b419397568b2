"""Estimates and the fine-tuning-or-RAG advisor: read-only answers computed from a config alone.

Thin: ``tunelab.training.estimate.estimate`` (memory per device, largest batch,
time, cost, cheapest within a budget) and ``tunelab.training.advisor.advise``.
Neither changes anything, so the read scope is enough.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from tunelab import models as catalog
from tunelab.api.deps import ReadScope, ServerPaths
from tunelab.api.errors import ErrorBody
from tunelab.errors import InvalidInput
from tunelab.jobs.paths import admit_model_name
from tunelab.training import methods
from tunelab.training.advisor import Advice, AdviceRequest, advise
from tunelab.training.config import load_config_dict
from tunelab.training.estimate import Estimate, estimate

router = APIRouter(prefix="/api", tags=["estimates"])


class EstimateRequest(BaseModel):
    """A training config (``dataset`` may be left out) and what the time and cost depend on."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] = Field(
        default_factory=dict,
        description="TrainConfig fields (model, method, batch_size, max_length, precision, lora, ...); "
        "unnamed fields take TrainConfig's defaults.",
    )
    rows: int | None = Field(None, ge=1, le=10**9, description="Training rows (for time and cost without max_steps).")
    tokens_per_row: int | None = Field(
        None, ge=1, le=131_072, description="Mean tokens per row; default the config's max_length (an upper bound)."
    )
    budget: float | None = Field(None, ge=0, le=1e9, description="Most you would pay; finds the cheapest GPU setup.")


_ANSWERS: dict[int | str, dict[str, Any]] = {
    424: {"model": ErrorBody, "description": "The model's config cannot be read here (offline, not on disk)."},
}


def _run_estimate(body: EstimateRequest, paths: Any) -> Estimate:
    fields = dict(body.config)
    if not isinstance(fields.get("model", ""), str):
        raise InvalidInput("`config.model` must be a model name.", hint="e.g. smollm2-135m-instruct.")
    fields["model"] = admit_model_name(str(fields.get("model") or "smollm2-135m-instruct"), "config.model", paths)
    config = load_config_dict({"dataset": methods.SIZING_DATASET, **fields})
    info = catalog.model_info(config.model)
    return estimate(config, info, rows=body.rows, tokens_per_row=body.tokens_per_row, budget=body.budget)


@router.post("/estimate", response_model=Estimate, summary="Memory, fitting devices, time and cost of a config",
             responses=_ANSWERS)  # fmt: skip
async def post_estimate(body: EstimateRequest, _: ReadScope, paths: ServerPaths) -> Estimate:
    """No weights are loaded: the model's config.json (or the built-in's facts) is enough."""
    return await run_in_threadpool(_run_estimate, body, paths)


@router.post("/advisor", response_model=Advice, summary="Fine-tuning or RAG? The lesson's decision framework")
async def post_advisor(body: AdviceRequest, _: ReadScope) -> Advice:
    return advise(body)
