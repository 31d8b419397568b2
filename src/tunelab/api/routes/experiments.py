"""A/B experiments: ``/api/experiments`` (create, list, one with results, stop, feedback).

Thin over ``tunelab.serving.experiments``. Chat requests reach an experiment
through ``/v1/chat/completions`` with ``model: "exp:NAME"``; feedback names
the ``id`` of such a reply. Feedback needs only ``read``, like the chat it
rates, so the application in front of an experiment can send its users'
thumbs with the token it chats with.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from tunelab.api.deps import ReadScope, SessionDep, SettingsDep, TrainScope
from tunelab.api.schemas import Strict
from tunelab.jobs.names import check_text
from tunelab.serving import experiments as service

router = APIRouter(prefix="/api/experiments", tags=["experiments"])

ExperimentName = Annotated[
    str, Path(min_length=1, max_length=64, description="Experiment name (or id).")
]


class VariantBody(Strict):
    name: str = Field(min_length=1, max_length=64, description="Variant name, shown in answers and results.",
                      examples=["control"])  # fmt: skip
    model: str = Field(min_length=1, max_length=500, description="A model from GET /v1/models (built-in, "
                       "collection entry, job id).", examples=["smollm2-135m-instruct"])  # fmt: skip
    weight: float = Field(
        gt=0, le=1, description="Share of the traffic; the weights sum to 1.", examples=[0.5]
    )


class ExperimentCreate(Strict):
    name: str = Field(
        min_length=1, max_length=64, description="Unique; chat with it as `exp:NAME`."
    )
    variants: list[VariantBody] = Field(min_length=1, max_length=service.MAX_VARIANTS,
                                        description="Two or more variants with their split.")  # fmt: skip
    description: str = Field("", max_length=2000, description="What the experiment tests.")


class FeedbackBody(Strict):
    response_id: str = Field(
        min_length=1, max_length=64, description="The `id` of the chat completion."
    )
    rating: Literal["up", "down"] | None = Field(None, description="Thumbs up or down.")
    score: float | None = Field(None, ge=1, le=5, description=f"A 1-5 score ({service.GOOD_SCORE:g} or more is "
                                "good, like a thumbs up).")  # fmt: skip
    comment: str | None = Field(None, max_length=2000, description="Free text.")


class ExperimentsPublic(BaseModel):
    data: list[dict[str, Any]]
    count: int


@router.post(
    "", status_code=201, summary="Create an A/B experiment (chat with it as model exp:NAME)"
)
def create_experiment(body: ExperimentCreate, session: SessionDep, settings: SettingsDep,
                      _: TrainScope) -> dict[str, Any]:  # fmt: skip
    check_text(body.description, "description")
    row = service.create(
        session, settings, body.name, [v.model_dump() for v in body.variants], body.description
    )
    return service.public(session, row)


@router.get(
    "",
    response_model=ExperimentsPublic,
    summary="List experiments (newest first) with their results",
)
def list_experiments(session: SessionDep, _: ReadScope) -> dict[str, Any]:
    rows = service.list_experiments(session)
    return {"data": [service.public(session, row) for row in rows], "count": len(rows)}


@router.get("/{name}", summary="One experiment with per-variant results, intervals and tests")
def get_experiment(name: ExperimentName, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return service.public(session, service.get(session, name))


@router.post("/{name}/stop", summary="Stop routing requests (its records stay)")
def stop_experiment(name: ExperimentName, session: SessionDep, _: TrainScope) -> dict[str, Any]:
    return service.public(session, service.stop(session, name))


@router.post("/{name}/feedback", summary="Rate one reply of the experiment (thumbs or a 1-5 score)")
def experiment_feedback(name: ExperimentName, body: FeedbackBody, session: SessionDep,
                        _: ReadScope) -> dict[str, Any]:  # fmt: skip
    check_text(body.comment, "comment")
    row = service.feedback(session, name, body.response_id, rating=body.rating, score=body.score,
                           comment=body.comment)  # fmt: skip
    return {"response_id": row.response_id, "variant": row.variant, "rating": row.rating, "score": row.score,
            "comment": row.comment}  # fmt: skip
