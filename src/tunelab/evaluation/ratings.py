"""Human ratings of side-by-side generations, and the win rates they add up to.

A person reads one evaluation row (prompt, reference, each side's reply) and
says, for a pair of sides, whether the first is ``better``, ``worse`` or a
``tie``, with an optional comment. Sides are the evaluation's keys
(``model``, ``against``, ``against_2`` ..., ``run.side_keys``); a pair is stored
in side order with the verdict flipped if it was given the other way round, so
"model better than against" and "against worse than model" are one verdict,
and rating the same row and pair again replaces the rater's earlier verdict.
Everything is checked before anything is written: an unknown evaluation, row,
side or verdict is a 4xx with the values that would have worked.

Win rates count decisive verdicts (ties apart): ``win_rate`` of side A over B
is wins / (wins + losses) with a 95% Wilson score interval, which stays inside
[0, 1] and is honest for the handful of ratings a person gives.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.errors import Conflict, InvalidInput
from tunelab.evaluation.service import get
from tunelab.store.models import Evaluation, Rating, utcnow

VERDICTS = ("better", "worse", "tie")
FLIPPED = {"better": "worse", "worse": "better", "tie": "tie"}
Z_95 = 1.959964  # two-sided 95% normal quantile
MAX_COMMENT = 4000


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval for ``successes`` of ``trials`` (None without a trial)."""
    if trials <= 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    )
    return max(0.0, centre - half), min(1.0, centre + half)


def sides_of(evaluation: Evaluation) -> dict[str, str]:
    """Side key -> label, in side order, for the sides that have replies."""
    summary = evaluation.summary or {}
    labels = dict(summary.get("sides") or {})
    for key in summary.get("summary") or {}:
        labels.setdefault(key, str(summary.get(key) or key))
    rows = evaluation.rows or []
    present = set(rows[0].get("outputs") or {}) if rows else set(labels)
    return {key: str(label) for key, label in labels.items() if key in present}


def _check(evaluation: Evaluation, row_index: int, side_a: str, side_b: str, verdict: str) -> None:
    if evaluation.status != "completed":
        raise Conflict(f"evaluation {evaluation.id} is {evaluation.status}: only a completed one can be rated",
                       "wait until it is completed (GET /api/evaluations/{id})", code="not_ratable")  # fmt: skip
    count = len(evaluation.rows or [])
    if not 0 <= row_index < count:
        raise InvalidInput(f"evaluation {evaluation.id} has no row {row_index}",
                           f"rows are numbered 0 to {count - 1}" if count else "it has no rows to rate",
                           code="unknown_row", details={"rows": count})  # fmt: skip
    sides = list(sides_of(evaluation))
    for name, side in (("side_a", side_a), ("side_b", side_b)):
        if side not in sides:
            raise InvalidInput(f"`{name}` {side!r} is not a side of evaluation {evaluation.id}",
                               f"its sides: {', '.join(sides)}", code="unknown_side",
                               details={"sides": sides})  # fmt: skip
    if side_a == side_b:
        raise InvalidInput("a side cannot be rated against itself", "give two different sides", code="unknown_side",
                           details={"sides": sides})  # fmt: skip
    if verdict not in VERDICTS:
        raise InvalidInput(f"unknown verdict {verdict!r}", f"use one of: {', '.join(VERDICTS)}", code="unknown_verdict",
                           details={"verdicts": list(VERDICTS)})  # fmt: skip


def rate(session: Session, evaluation_id: str, *, row_index: int, side_a: str, side_b: str, verdict: str,
         comment: str = "", rater: str = "") -> Rating:  # fmt: skip
    """Store (or replace) ``rater``'s verdict on one row for a pair of sides; committed."""
    evaluation = get(session, evaluation_id)
    _check(evaluation, row_index, side_a, side_b, verdict)
    if len(comment) > MAX_COMMENT:
        raise InvalidInput(
            f"the comment has {len(comment)} characters; at most {MAX_COMMENT}", "shorten it"
        )
    order = list(sides_of(evaluation))
    if order.index(side_a) > order.index(side_b):
        side_a, side_b, verdict = side_b, side_a, FLIPPED[verdict]
    found = session.scalars(select(Rating).where(
        Rating.evaluation_id == evaluation_id, Rating.row_index == row_index, Rating.side_a == side_a,
        Rating.side_b == side_b, Rating.rater == rater)).first()  # fmt: skip
    if found is None:
        found = Rating(
            evaluation_id=evaluation_id,
            row_index=row_index,
            side_a=side_a,
            side_b=side_b,
            rater=rater,
        )
        session.add(found)
    found.verdict, found.comment, found.updated_at = verdict, comment, utcnow()
    session.commit()
    return found


def list_ratings(session: Session, evaluation_id: str) -> list[Rating]:
    get(session, evaluation_id)  # 404 for an unknown evaluation
    query = select(Rating).where(Rating.evaluation_id == evaluation_id)
    return list(
        session.scalars(query.order_by(Rating.row_index, Rating.side_a, Rating.side_b, Rating.id))
    )


def _pair(a: str, b: str, labels: dict[str, str], verdicts: list[str]) -> dict[str, Any]:
    wins, losses, ties = (verdicts.count(v) for v in VERDICTS)
    decisive = wins + losses
    interval = wilson_interval(wins, decisive)
    return {
        "side_a": a, "side_b": b, "label_a": labels[a], "label_b": labels[b], "ratings": len(verdicts),
        "wins": wins, "losses": losses, "ties": ties,
        "win_rate": round(wins / decisive, 4) if decisive else None,
        "interval": [round(interval[0], 4), round(interval[1], 4)] if interval else None,
        "tie_rate": round(ties / len(verdicts), 4) if verdicts else None,
    }  # fmt: skip


def summarize(session: Session, evaluation_id: str) -> dict[str, Any]:
    """Win rates per pair of sides (every pair, rated or not), with counts, ties and a Wilson interval."""
    evaluation = get(session, evaluation_id)
    labels = sides_of(evaluation)
    ratings = list_ratings(session, evaluation_id)
    pairs = [_pair(a, b, labels, [r.verdict for r in ratings if (r.side_a, r.side_b) == (a, b)])
             for a, b in combinations(labels, 2)]  # fmt: skip
    rated_rows = {r.row_index for r in ratings}
    return {"evaluation_id": evaluation_id, "sides": labels, "ratings": len(ratings), "rows": len(evaluation.rows or []),
            "rows_rated": len(rated_rows), "pairs": pairs, "confidence": 0.95}  # fmt: skip
