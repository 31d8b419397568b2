"""``GET /api/meta``: the studio's fixed vocabularies, read from the one home of each.

The dashboard (and any client) learns job statuses, the moves between them, priorities,
dataset formats, file types, training methods and the TrainConfig field groups here
instead of keeping copies that drift from the server: statuses, transitions and user
actions come from ``jobs/states.py``, formats from ``datasets/formats.py``, file suffixes
from ``datasets/readers.py``, methods from ``training/methods.py`` and field groups from
``training/config.py``, model categories and use cases from ``models/categories.py``,
the fields a remote provider's job cannot use from ``providers/registry.py``.
Nothing here depends on the store's contents, so the answer is
built once per process.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tunelab.api.deps import ReadScope

router = APIRouter(prefix="/api", tags=["system"])


class DatasetFormat(BaseModel):
    """A dataset format the reader detects, with the columns that identify it."""

    name: str = Field(description="Format name, as `format` in uploads and `dataset_format`.")
    columns: list[list[str]] = Field(
        description="Required column slots in detection order; any one name of a slot fills it."
    )


class FieldGroup(BaseModel):
    """A group of TrainConfig fields (dotted names for sections) as front ends lay them out."""

    name: str = Field(description="run, main, advanced or engine.")
    label: str = Field(description="Heading to show.")
    fields: list[str] = Field(description="Field names in display order, e.g. `lora.r`.")


class Method(BaseModel):
    """A fine-tuning method and the facts front ends show or decide by."""

    model_config = ConfigDict(extra="allow")  # the registry may add facts; they pass through

    name: str = Field(description="Value of TrainConfig's `method`.")
    family: str = Field(description="full, adapter or prompt-learning.")
    mergeable: bool = Field(description="The adapter can be merged into full weights.")
    packable: bool = Field(description="Micro-batches can be packed without padding.")
    default_learning_rate: float = Field(description="Peak learning rate when none is given.")
    needs_cuda: bool = Field(description="Trains only on a CUDA GPU.")
    description: str = Field(description="One line for people.")
    quantized: bool = Field(description="The frozen base is stored in 4 bits.")
    uses_lora_settings: bool = Field(description="TrainConfig's `lora` section applies.")


class TaskInfo(BaseModel):
    """A model family the engine trains (``training/tasks.py`` ``TASKS``) and what applies to it."""

    name: str = Field(description="Value of TrainConfig's `task` (besides `auto`, read from the model).")
    description: str = Field(description="One line for people, with example models.")
    auto_class: str = Field(description="The transformers class that loads it, e.g. AutoModelForSeq2SeqLM.")
    peft_task_type: str = Field(description="PEFT's `task_type` of its adapters.")
    dataset_format: str | None = Field(description="The dataset format it reads; null: any chat or instruction format.")
    packable: bool = Field(description="Examples may be packed into shared rows.")
    generates: bool = Field(description="The model writes text (chat, sample replies).")
    methods: list[str] = Field(description="Methods that can train it; the others are refused.")
    metrics: list[str] = Field(description="What its evaluation reports.")
    not_applicable: list[str] = Field(description="TrainConfig fields (dotted) that do not apply: forms hide them.")


class MetricInfo(BaseModel):
    """An evaluation metric (the registry in ``evaluation/metrics.py``)."""

    name: str = Field(description="Name for `metrics` in evaluations and TrainConfig `output.eval_metrics`.")
    description: str = Field(description="What it measures, with its scale.")
    needs: str = Field(description="`generations` (replies against references) or `logits` (teacher-forced).")
    higher_is_better: bool = Field(description="Whether a larger value is better.")


class Meta(BaseModel):
    """Every list the dashboard needs, from the module that owns it."""

    job_statuses: list[str] = Field(description="Every job status, in life-cycle order.")
    terminal_statuses: list[str] = Field(description="Statuses that never change.")
    transitions: dict[str, list[str]] = Field(
        description="Status -> statuses it may move to (the state machine)."
    )
    actions: dict[str, list[str]] = Field(
        description="User action (pause, resume, cancel, retry) -> statuses it may start from."
    )
    interventions: dict[str, list[str]] = Field(
        description="Intervention on a running engine (checkpoint, learning_rate, stop_early) -> statuses it "
        "may be asked in."
    )
    priorities: list[str] = Field(description="Queue priorities, highest first.")
    default_priority: str = Field(description="Priority of a job created without one.")
    dataset_formats: list[DatasetFormat] = Field(description="Formats in detection order.")
    file_types: list[str] = Field(description="File types the dataset readers read.")
    file_suffixes: dict[str, str] = Field(
        description="File-name suffix -> file type; uploads accept exactly these suffixes."
    )
    methods: list[Method] = Field(description="Fine-tuning methods (the method registry).")
    tasks: list[TaskInfo] = Field(description="Model families (the task registry), with the fields that apply.")
    field_groups: list[FieldGroup] = Field(description="TrainConfig fields grouped for forms.")
    model_categories: list[str] = Field(
        description="Model categories for browsing and POST /api/models, in display order (models/categories.py)."
    )
    model_use_cases: dict[str, str] = Field(
        description="Use case key -> description, for GET /api/models/recommendations?use_case=."
    )
    alert_rules: list[str] = Field(description="Threshold rules, the keys of PUT /api/alerts/thresholds.")
    notification_kinds: list[str] = Field(description="Notification channel kinds.")
    notification_events: list[str] = Field(description="Events a notification channel can take.")
    notification_levels: list[str] = Field(description="Notification levels, least serious first.")
    metrics: list[MetricInfo] = Field(description="Evaluation metrics (evaluation/metrics.py `METRICS`).")
    metric_groups: dict[str, list[str]] = Field(description="Names that stand for several metrics, e.g. `rouge`.")
    default_metrics: list[str] = Field(description="Metrics an evaluation computes when none are named.")
    evaluation_statuses: list[str] = Field(description="Statuses of an evaluation, in life-cycle order.")
    rating_verdicts: list[str] = Field(description="Verdicts a rating gives side A against side B "
                                       "(evaluation/ratings.py `VERDICTS`).")
    export_formats: dict[str, str] = Field(description="Export format -> what it is for (export/exporter.py `FORMATS`).")
    remote_refuses: dict[str, str] = Field(
        description="TrainConfig field -> why a job on a remote provider cannot use it (providers/registry.py "
        "`LOCAL_ONLY`): forms hide these when a remote provider is chosen."
    )


def _methods() -> list[dict[str, Any]]:
    from tunelab.training.methods import METHODS

    return [spec.as_dict() for spec in METHODS.values()]


def _evaluation_meta() -> dict[str, Any]:
    from tunelab.evaluation.metrics import DEFAULT_METRICS, GROUPS, metric_names
    from tunelab.evaluation.ratings import VERDICTS
    from tunelab.evaluation.service import STATUSES

    return {"metrics": metric_names(), "metric_groups": {k: list(v) for k, v in GROUPS.items()},
            "default_metrics": list(DEFAULT_METRICS), "evaluation_statuses": list(STATUSES),
            "rating_verdicts": list(VERDICTS)}  # fmt: skip


def _export_formats() -> dict[str, str]:
    from tunelab.export.exporter import FORMATS

    return {name: spec.description for name, spec in FORMATS.items()}


@lru_cache(maxsize=1)
def build_meta() -> dict[str, Any]:
    """The answer of ``GET /api/meta`` (static for the life of the process)."""
    from tunelab.api.schemas import JobCreate
    from tunelab.datasets.formats import FORMATS
    from tunelab.datasets.readers import FILE_TYPES, SUFFIXES
    from tunelab.jobs.states import ACTIONS, INTERVENTIONS, TERMINAL, TRANSITIONS, JobStatus
    from tunelab.models.categories import CATEGORIES, USE_CASES
    from tunelab.monitor.alerts import RULES
    from tunelab.monitor.notify import EVENTS, KINDS, LEVELS
    from tunelab.providers.registry import LOCAL_ONLY
    from tunelab.store.models import PRIORITIES
    from tunelab.training.config_docs import field_groups
    from tunelab.training.tasks import TASKS

    order = list(JobStatus)
    by_order = order.index
    return {
        "job_statuses": [s.value for s in order],
        "terminal_statuses": [s.value for s in sorted(TERMINAL, key=by_order)],
        "transitions": {s.value: [t.value for t in sorted(TRANSITIONS[s], key=by_order)] for s in order},
        "actions": {name: [s.value for s in sorted(starts, key=by_order)] for name, starts in ACTIONS.items()},
        "interventions": {name: [s.value for s in sorted(starts, key=by_order)]
                          for name, starts in INTERVENTIONS.items()},
        "priorities": sorted(PRIORITIES, key=PRIORITIES.__getitem__),
        "default_priority": JobCreate.model_fields["priority"].default,
        "dataset_formats": [{"name": name, "columns": [list(slot) for slot in slots]} for name, slots in FORMATS.items()],
        "file_types": list(FILE_TYPES),
        "file_suffixes": dict(SUFFIXES),
        "methods": _methods(),
        "tasks": [spec.as_dict() for spec in TASKS.values()],
        "field_groups": field_groups(),
        "model_categories": list(CATEGORIES),
        "model_use_cases": dict(USE_CASES),
        "alert_rules": list(RULES),
        "notification_kinds": list(KINDS),
        "notification_events": list(EVENTS),
        "notification_levels": list(LEVELS),
        **_evaluation_meta(),
        "export_formats": _export_formats(),
        "remote_refuses": dict(LOCAL_ONLY),
    }  # fmt: skip


@router.get("/meta", response_model=Meta, summary="Statuses, transitions, formats, file types, methods, field groups")
def meta(_: ReadScope) -> dict[str, Any]:
    return build_meta()
