"""Request and response shapes of the jobs and configurations routes.

Families follow ``XCreate`` (what a client sends) and ``XsPublic{data, count}``
(pages). Job rows are returned as the store's ``to_dict()`` shape, documented
here as ``JobPublic`` so the OpenAPI schema is useful.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobConfiguration(Strict):
    model: str = Field(
        min_length=1, max_length=500,
        description="Catalog id (e.g. smollm2-135m-instruct), collection id, Hub id or local folder.",
    )
    dataset: str = Field(
        min_length=1, max_length=500,
        description="Stored dataset version id, dataset id or name, or a server-side file path.",
    )
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description="TrainConfig fields (method, max_steps, learning_rate ...)."
    )


class SaveOptions(Strict):
    save_model: bool = Field(default=True, description="Keep the trained adapter/weights as artifacts.")
    model_name: str | None = Field(
        default=None, max_length=200, description="Name for the saved model (a label, not a path)."
    )
    push_to_hub: bool = Field(default=False, description="Push the result to the Hugging Face Hub.")
    make_public: bool = Field(default=False, description="Make the pushed Hub repository public.")


class JobCreate(Strict):
    name: str = Field(default="", max_length=200, description="Label shown in listings.")
    description: str = Field(default="", max_length=5000, description="Free text.")
    tags: list[str] = Field(default_factory=list, max_length=50, description="Labels to filter by.")
    configuration: JobConfiguration | None = Field(
        default=None, description="What to train; or give configuration_id."
    )
    configuration_id: str | None = Field(
        default=None, max_length=64, description="A saved configuration to train."
    )
    save: SaveOptions = Field(default_factory=SaveOptions, description="Model saving options.")
    priority: Literal["high", "medium", "low"] = Field(default="medium", description="Queue priority.")
    timeout_s: float | None = Field(default=None, gt=0, le=30 * 86400, description="Wall-clock limit.")
    max_attempts: int = Field(default=3, ge=1, le=100, description="Runs allowed after worker loss.")
    submit: bool = Field(default=True, description="Queue at once; false leaves it 'created'.")


class JobPublic(BaseModel):
    """A job as stored (extra fields allowed: the store may add columns)."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    status: str
    priority: str
    config: dict[str, Any]
    tags: list[str]
    created_at: str | None = None


class Page(BaseModel):
    """A page of results and the total that matched."""

    data: list[dict[str, Any]]
    count: int


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


class CompareRequest(Strict):
    job_ids: list[str] = Field(min_length=1, max_length=50, description="Jobs to compare.")
    metrics: list[str] = Field(
        default_factory=lambda: ["loss", "eval_loss"], max_length=20, description="Metric names."
    )


class ConfigurationCreate(Strict):
    name: str = Field(default="", max_length=200, description="Label for the configuration.")
    model: str = Field(min_length=1, max_length=500, description="Model id or path.")
    dataset: str = Field(min_length=1, max_length=500, description="Dataset version id, name or path.")
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="TrainConfig fields.")
