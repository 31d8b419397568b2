"""Ratings of an evaluation's side-by-side rows: ``/api/evaluations/{id}/ratings`` and their win rates.

Thin over ``tunelab.evaluation.ratings``: a person's verdict on one row for a
pair of sides (better, worse, tie, optional comment), the list, and the win
rates per pair with counts, ties and a Wilson interval. Rating is a write
(``train``); reading them needs ``read``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tunelab.api.deps import ReadScope, SessionDep, TrainScope
from tunelab.api.schemas import Strict
from tunelab.evaluation import ratings
from tunelab.jobs.names import check_name, check_text

router = APIRouter(prefix="/api/evaluations", tags=["evaluations"])


class RatingCreate(Strict):
    """One verdict: is `side_a`'s reply to row `row` better than, worse than or as good as `side_b`'s?"""

    row: int = Field(
        ge=0, le=1_000_000, description="The row's `index` in GET /api/evaluations/{id}."
    )
    side_a: str = Field(
        "model",
        min_length=1,
        max_length=32,
        description="A side key of the evaluation "
        "(`model`, `against`, `against_2` ...; its `summary.sides`).",
    )
    side_b: str = Field("against", min_length=1, max_length=32, description="The other side key.")
    verdict: str = Field(min_length=1, max_length=16, description="`better`, `worse` or `tie` (side_a against side_b).",
                         examples=["better"])  # fmt: skip
    comment: str = Field("", max_length=ratings.MAX_COMMENT, description="Optional: why.")
    rater: str = Field(
        "",
        max_length=200,
        description="Who rated (default: the token's name, `local` without one); "
        "one verdict per rater, row and pair, so rating again replaces it.",
    )


class RatingPublic(BaseModel):
    id: int
    evaluation_id: str
    row_index: int
    side_a: str
    side_b: str
    verdict: str = Field(
        description="For side_a against side_b (stored in side order, flipped if given the other way)."
    )
    comment: str
    rater: str
    created_at: str | None
    updated_at: str | None


class RatingsPublic(BaseModel):
    data: list[RatingPublic]
    count: int


class PairSummary(BaseModel):
    side_a: str
    side_b: str
    label_a: str
    label_b: str
    ratings: int
    wins: int = Field(description="Rows where side_a was rated better.")
    losses: int = Field(description="Rows where side_a was rated worse.")
    ties: int
    win_rate: float | None = Field(
        description="wins / (wins + losses); null before a decisive rating."
    )
    interval: list[float] | None = Field(description="95% Wilson score interval of win_rate.")
    tie_rate: float | None


class RatingsSummary(BaseModel):
    evaluation_id: str
    sides: dict[str, str] = Field(description="Side key -> model label, in side order.")
    ratings: int
    rows: int
    rows_rated: int
    pairs: list[PairSummary]
    confidence: float


@router.post(
    "/{evaluation_id}/ratings",
    status_code=201,
    response_model=RatingPublic,
    summary="Rate one row for a pair of sides (better / worse / tie)",
)
def create_rating(
    evaluation_id: str, body: RatingCreate, session: SessionDep, principal: TrainScope
) -> dict[str, Any]:
    check_name(body.rater, "rater")
    check_text(body.comment, "comment")
    rating = ratings.rate(session, evaluation_id, row_index=body.row, side_a=body.side_a, side_b=body.side_b,
                          verdict=body.verdict, comment=body.comment, rater=body.rater or principal.name)  # fmt: skip
    return rating.to_dict()


@router.get(
    "/{evaluation_id}/ratings", response_model=RatingsPublic, summary="An evaluation's ratings"
)
def list_ratings(evaluation_id: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    rows = ratings.list_ratings(session, evaluation_id)
    return {"data": [row.to_dict() for row in rows], "count": len(rows)}


@router.get(
    "/{evaluation_id}/ratings/summary",
    response_model=RatingsSummary,
    summary="Win rates per pair of sides from the ratings (counts, ties, Wilson interval)",
)
def ratings_summary(evaluation_id: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return ratings.summarize(session, evaluation_id)
