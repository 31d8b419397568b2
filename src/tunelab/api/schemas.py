"""Request and response shapes of the jobs and configurations routes.

Families follow ``XCreate`` (what a client sends) and ``XsPublic{data, count}``
(pages). Job rows are returned as the store's ``to_dict()`` shape, documented
here as ``JobPublic`` so the OpenAPI schema is useful.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

#: The largest integer any query or path parameter takes (ids, cursors, offsets): 2**53 - 1,
#: the largest a JavaScript client holds exactly, well inside SQLite's and PostgreSQL's
#: BIGINT (2**63 - 1), so a larger number is a 422 here instead of an overflow in the store.
MAX_ID = 2**53 - 1

#: ``offset`` of every paged list.
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Skip this many results.")]
#: An event id to continue after (``?after=``).
AfterCursor = Annotated[int, Query(ge=0, le=MAX_ID, description="Only events with a larger id.")]
#: A numeric id in the path (artifacts).
IdPath = Annotated[int, Path(ge=0, le=MAX_ID, description="Numeric id.")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reference(BaseModel):
    """A model or dataset as the workflow guide sends it: ``{uid, name}`` (other fields ignored).

    A model search result (``{id, name, provider, ...}``) works as it is: ``id``
    stands in for ``uid``.
    """

    model_config = ConfigDict(extra="allow")

    uid: str | None = Field(default=None, min_length=1, max_length=500, description="Model or dataset id.")
    id: str | None = Field(default=None, min_length=1, max_length=500, description="Same as uid (search results).")
    name: str | None = Field(
        default=None, max_length=200,
        description="Label; for a dataset whose uid is not found, a stored dataset of this name is used.",
    )


class JobConfiguration(Strict):
    model: str | Reference = Field(
        description="Catalog id (e.g. smollm2-135m-instruct), collection id, Hub id or local folder; "
        "or {uid, name}.",
    )
    dataset: str | Reference = Field(
        description="Stored dataset version id, dataset id or name, or a server-side file path; or {uid, name}.",
    )
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict,
        description="TrainConfig fields (method, max_steps, learning_rate ...); the guide's flat names "
        "(lora_r, lora_alpha, lora_dropout, target_modules) are accepted, and `uid` names a saved "
        "configuration whose values the others override.",
    )

    @field_validator("model", "dataset")
    @classmethod
    def _not_empty(cls, value: str | Reference) -> str | Reference:
        if isinstance(value, str) and not 1 <= len(value) <= 500:
            raise ValueError("must be 1 to 500 characters")
        return value


class SaveOptions(Strict):
    save_model: bool = Field(default=True, description="Keep the trained adapter/weights as artifacts.")
    model_name: str | None = Field(
        default=None, max_length=200, description="Name for the saved model (a label, not a path)."
    )
    push_to_hub: bool = Field(default=False, description="Push the result to the Hugging Face Hub.")
    make_public: bool = Field(default=False, description="Make the pushed Hub repository public.")


class ModelSaving(Strict):
    """The guide's ``modelSaving`` block; the same options as ``save`` under its camelCase names."""

    saveModel: bool = Field(default=True, description="Keep the trained weights; false keeps none.")
    modelName: str | None = Field(
        default=None, max_length=200, description="Name for the saved model (a label; user/name to push)."
    )
    pushToHub: bool = Field(default=False, description="Push the result to the Hugging Face Hub.")
    makePublic: bool = Field(default=False, description="Make the pushed Hub repository public.")


class Resources(BaseModel):
    """What the job needs to run: stored and returned now, honoured by the scheduler later."""

    model_config = ConfigDict(extra="forbid")

    device: Literal["cpu", "cuda", "mps"] = Field(default="cpu", description="Where the job must train.")
    gpus: int | None = Field(default=None, ge=0, le=64, description="GPUs (cuda: 1 by default, cpu: 0).")
    memory_gb: float | None = Field(default=None, gt=0, le=1_000_000, description="Memory the job needs, GB.")


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
    modelSaving: ModelSaving | None = Field(
        default=None, description="The guide's model saving options (instead of `save`)."
    )
    resources: Resources | None = Field(default=None, description="Device, GPU count and memory the job needs.")
    priority: Literal["high", "medium", "low"] = Field(default="medium", description="Queue priority.")
    timeout_s: float | None = Field(default=None, gt=0, le=30 * 86400, description="Wall-clock limit.")
    max_attempts: int = Field(default=3, ge=1, le=100, description="Runs allowed after worker loss.")
    submit: bool = Field(default=True, description="Queue at once; false leaves it 'created'.")
    provider: str = Field(
        default="local", min_length=1, max_length=64,
        description="Where the job trains: `local` (this studio's engine) or a provider configured on the server "
        "(`GET /api/providers`); a name only, never a URL or key.",
    )


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
    jobUid: str | None = Field(default=None, description="The job id again, under the guide's name.")
    source: str = Field(default="studio", description="Where the job came from: `studio` (API, dashboard, SDK) "
                        "or `cli` (a `tunelab train` run, recorded when it ended).")
    resources: dict[str, Any] | None = Field(default=None, description="The resources the job asked for.")
    provider: str = Field(default="local", description="Where the job trains (`local` or a configured provider).")
    remote: dict[str, Any] | None = Field(
        default=None, description="On a remote provider: the remote job and file ids, its status, checkpoints and "
        "the tuned model's id (`fine_tuned_model`).",
    )
    stopping: dict[str, Any] | None = Field(
        default=None,
        description="While a running job is being paused or cancelled: {action, after_step, since}; the "
        "engine stops after step after_step once its checkpoint is saved, however long that takes.",
    )


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
        default_factory=lambda: ["loss", "eval_loss"], max_length=20,
        description="Logged metric names (loss, eval_loss, learning_rate ...) or job totals: "
        "final_loss, training_time (s), gpu_hours, cost (at the configured price per hour).",
    )


class ConfigurationCreate(Strict):
    name: str = Field(default="", max_length=200, description="Label for the configuration.")
    mode: Literal["manual", "automated"] = Field(
        default="manual", description="How the values were chosen; part of the id."
    )
    model: str = Field(min_length=1, max_length=500, description="Model id or path.")
    dataset: str = Field(min_length=1, max_length=500, description="Dataset version id, name or path.")
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="TrainConfig fields.")
