"""Analytics: jobs per day, success rate, queue wait, compute hours, popular models, datasets and settings.

Thin: ``tunelab.jobs.analytics.analytics`` computes everything.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tunelab.api.deps import ReadScope, SessionDep
from tunelab.jobs.analytics import analytics

router = APIRouter(prefix="/api", tags=["analytics"])


class DayCounts(BaseModel):
    date: str = Field(description="UTC date, YYYY-MM-DD.")
    created: int = Field(description="Jobs created that day.")
    completed: int = Field(description="Jobs that completed that day.")
    failed: int = Field(description="Jobs that failed that day.")
    cancelled: int = Field(description="Jobs cancelled that day.")


class Totals(BaseModel):
    jobs: int = Field(description="Jobs created in the window.")
    by_status: dict[str, int] = Field(description="Those jobs by their status now.")
    completed: int = Field(description="Completed.")
    failed: int = Field(description="Failed.")
    cancelled: int = Field(description="Cancelled (not counted in the success rate).")
    ended: int = Field(description="completed + failed.")


class QueueWait(BaseModel):
    count: int = Field(description="Jobs that started after being queued.")
    mean_s: float | None = Field(description="Mean seconds from queued to started.")
    median_s: float | None = Field(description="Median seconds.")
    p95_s: float | None = Field(description="95th percentile seconds.")
    max_s: float | None = Field(description="Longest wait in seconds.")


class Compute(BaseModel):
    cpu_hours: float = Field(description="Run hours of jobs that trained on a CPU (or MPS).")
    gpu_hours: float = Field(description="Run hours of jobs that trained on CUDA.")
    total_hours: float = Field(description="Both.")


class Popular(BaseModel):
    jobs: int = Field(description="Jobs that used it.")
    completed: int = Field(description="Of which completed.")


class PopularModel(Popular):
    model: str = Field(description="Model as the jobs named it.")


class PopularDataset(Popular):
    dataset: str = Field(description="Dataset as the jobs named it.")


class ValueCount(BaseModel):
    value: str = Field(description="A value (numbers and lists as JSON text).")
    count: int = Field(description="Jobs that chose it.")


class HyperparameterChoice(BaseModel):
    name: str = Field(description="Hyperparameter name, as jobs set it.")
    jobs: int = Field(description="Jobs that set it explicitly.")
    values: list[ValueCount] = Field(description="Its most common values, most common first (at most 5).")


class AnalyticsPublic(BaseModel):
    days: int = Field(description="Window length in days.")
    since: str | None = Field(description="Start of the window (UTC midnight).")
    generated_at: str | None = Field(description="When this was computed.")
    totals: Totals
    success_rate: float | None = Field(description="completed / (completed + failed) in percent; null with none ended.")
    jobs_per_day: list[DayCounts] = Field(description="One entry per day of the window, oldest first.")
    queue_wait: QueueWait
    compute: Compute
    popular_models: list[PopularModel] = Field(description="Most used models (top 10).")
    popular_datasets: list[PopularDataset] = Field(description="Most used datasets (top 10).")
    hyperparameters: list[HyperparameterChoice] = Field(description="Hyperparameters jobs set, most often set first.")


@router.get("/analytics", response_model=AnalyticsPublic, summary="Jobs per day, success rate, queue wait, compute hours, popular choices")
def get_analytics(
    session: SessionDep,
    _: ReadScope,
    days: Annotated[int, Query(ge=1, le=3650, description="Window: jobs created in the last N days (today included).")] = 30,
) -> dict[str, Any]:
    return analytics(session, days=days)
