"""``GET /api/meta``: the studio's fixed vocabularies, read from the one home of each.

The dashboard (and any client) learns job statuses, the moves between them, priorities,
dataset formats, file types, training methods and the TrainConfig field groups here
instead of keeping copies that drift from the server: statuses, transitions and user
actions come from ``jobs/states.py``, formats from ``datasets/formats.py``, file suffixes
from ``datasets/readers.py``, methods from ``training/methods.py`` and field groups from
``training/config.py``, model categories and use cases from ``models/categories.py``.
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


def _methods() -> list[dict[str, Any]]:
    from tunelab.training.methods import METHODS

    return [spec.as_dict() for spec in METHODS.values()]


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
    from tunelab.store.models import PRIORITIES
    from tunelab.training.config_docs import field_groups

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
        "field_groups": field_groups(),
        "model_categories": list(CATEGORIES),
        "model_use_cases": dict(USE_CASES),
        "alert_rules": list(RULES),
        "notification_kinds": list(KINDS),
        "notification_events": list(EVENTS),
        "notification_levels": list(LEVELS),
    }  # fmt: skip


@router.get("/meta", response_model=Meta, summary="Statuses, transitions, formats, file types, methods, field groups")
def meta(_: ReadScope) -> dict[str, Any]:
    return build_meta()
