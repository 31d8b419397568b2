"""Interventions on a running job: checkpoint now, change the learning rate, stop early.

Thin over ``tunelab.jobs.service`` (``checkpoint_job``, ``set_learning_rate``,
``stop_early_job``): each records a request and answers 202 at once; the worker
relays it into the engine's control file and the engine applies it at the next
step boundary, answering with a job event (``checkpoint_saved``,
``learning_rate_changed``, ``stopped_early``) whose ``data.request_id`` is this
answer's ``request.id``. A job that is not running answers 409 with the states
that allow it (``jobs/states.py`` ``INTERVENTIONS``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tunelab.api.deps import SessionDep, TrainScope
from tunelab.api.schemas import JobPublic
from tunelab.jobs import service

router = APIRouter(prefix="/api/jobs", tags=["interventions"])

#: What the engine writes when it has carried out each request.
ANSWERS = {"checkpoint": "checkpoint_saved", "learning_rate": "learning_rate_changed", "stop_early": "stopped_early"}


class LearningRateBody(BaseModel):
    """The rate a running job trains on from its next step."""

    learning_rate: float = Field(
        description="New learning rate, within TrainConfig's range (1e-6 to 1e-2). The schedule is "
        "rescaled so it continues (warm-up, decay) from this value.",
        examples=[1e-4],
    )


class InterventionPublic(BaseModel):
    """One recorded request."""

    id: int = Field(description="Request id: the job event that records it; the engine's answer "
                    "event carries it as `data.request_id`.")
    action: Literal["checkpoint", "learning_rate", "stop_early"] = Field(description="What was asked.")
    value: float | None = Field(None, description="The new learning rate (learning_rate only).")
    status: Literal["requested"] = Field("requested", description="Always `requested`: the engine acts "
                                         "on it at its next step boundary.")
    answer_event: str = Field(description="The event type the engine writes when it has done it.")


class InterventionAnswer(BaseModel):
    """The job as it is now and the request that was recorded."""

    job: JobPublic = Field(description="The job (still running; the change shows in its events).")
    request: InterventionPublic = Field(description="The recorded request.")


def _answer(job: Any, event: Any) -> dict[str, Any]:
    data = event.data or {}
    action = data["action"]
    return {"job": job.to_dict(), "request": {"id": event.id, "action": action, "value": data.get("value"),
                                              "status": "requested", "answer_event": ANSWERS[action]}}


@router.post("/{job_id}/checkpoint", status_code=202, response_model=InterventionAnswer,
             summary="Save a checkpoint now and keep training")
def checkpoint_job(job_id: str, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    return _answer(*service.checkpoint_job(session, job_id))


@router.post("/{job_id}/learning-rate", status_code=202, response_model=InterventionAnswer,
             summary="Change a running job's learning rate from its next step")
def set_learning_rate(job_id: str, body: LearningRateBody, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    return _answer(*service.set_learning_rate(session, job_id, body.learning_rate))


@router.post("/{job_id}/stop-early", status_code=202, response_model=InterventionAnswer,
             summary="End now with the current weights (output saved, job completed)")
def stop_early(job_id: str, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    return _answer(*service.stop_early_job(session, job_id))
