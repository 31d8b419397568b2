"""A/B experiments: variants with a traffic split behind one chat name, ``exp:<name>``.

An experiment holds two or more variants, each a model the registry can
serve (``registry.chat_location``: a built-in, a job's output, a collection
entry for an adapter folder or an exported model), with weights that sum to
1. A chat request for ``exp:<name>`` is assigned a variant by the split:
with a ``user`` the choice is a hash of experiment and user, so one person
always meets the same variant (sticky); without, a random draw. Each answered
request is recorded (variant, user, latency, tokens) under its response id,
which is what feedback (thumbs up or down, or a 1-5 score) names later.
Results per variant come from those rows, with Wilson intervals and tests
from ``evaluation.significance``.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from tunelab.errors import Conflict, InvalidInput, NotFound, TunelabError
from tunelab.evaluation.significance import chi_square, two_proportion_z, wilson_interval
from tunelab.serving.named import NAME, NAME_HINT, add_named, check_name, find_named, newest_first
from tunelab.settings import Settings
from tunelab.store.models import Experiment, ExperimentRequest, utcnow

PREFIX = "exp:"
STATUSES = ("running", "stopped")
MAX_VARIANTS = 10
#: A 1-5 score at or above this counts as a good rating, like a thumbs up.
GOOD_SCORE = 4.0


def check_variants(
    session: Session, settings: Settings, variants: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every problem with the variants at once: count, names, weights summing to 1, models that exist."""
    from tunelab.serving.registry import chat_location

    problems: list[str] = []
    if not 2 <= len(variants) <= MAX_VARIANTS:
        problems.append(f"an experiment needs 2 to {MAX_VARIANTS} variants, got {len(variants)}")
    names = [str(v.get("name", "")) for v in variants]
    for index, variant in enumerate(variants):
        name, model, weight = variant.get("name"), variant.get("model"), variant.get("weight")
        if not isinstance(name, str) or not NAME.match(name):
            problems.append(f"variants[{index}].name {str(name)[:80]!r}: {NAME_HINT}")
        elif names.count(name) > 1:
            problems.append(f"variants[{index}].name {name!r} is used twice")
        if not isinstance(weight, int | float) or isinstance(weight, bool) or not 0 < weight <= 1:
            problems.append(
                f"variants[{index}].weight must be a number above 0 and at most 1, got {weight!r}"
            )
        if not isinstance(model, str) or not model or model.startswith(PREFIX):
            problems.append(f"variants[{index}].model must name a model (not another experiment)")
            continue
        try:
            chat_location(session, settings, model)
        except TunelabError as exc:
            problems.append(f"variants[{index}].model {model!r}: {exc.message}")
    weights = [v.get("weight") for v in variants]
    if all(isinstance(w, int | float) for w in weights) and weights and not math.isclose(sum(weights), 1.0,  # type: ignore[arg-type]
                                                                                     abs_tol=1e-6):  # fmt: skip
        problems.append(f"the weights sum to {sum(weights):.6g}, not 1")  # type: ignore[arg-type]
    if problems:
        raise InvalidInput("; ".join(problems), "give each variant a name, a model from GET /v1/models and a "
                           "weight, the weights summing to 1 (e.g. 0.5 and 0.5)", details={"errors": problems})  # fmt: skip
    return [
        {"name": v["name"], "model": v["model"], "weight": float(v["weight"])} for v in variants
    ]


def create(session: Session, settings: Settings, name: str, variants: list[dict[str, Any]],
           description: str = "") -> Experiment:  # fmt: skip
    """Check and store a running experiment (committed); a taken name is a 409."""
    check_name(name, "name")
    row = Experiment(id=f"exp-{uuid.uuid4().hex[:12]}", name=name, description=description, status="running",
                     variants=check_variants(session, settings, variants))  # fmt: skip
    return add_named(session, row, "experiment", "choose another name, or stop and reuse none: "
                     "names identify an experiment's records")  # fmt: skip


def list_experiments(session: Session) -> list[Experiment]:
    return newest_first(session, Experiment)


def get(session: Session, name: str) -> Experiment:
    """An experiment by name (or id)."""
    return find_named(session, Experiment, name, "experiment")


def stop(session: Session, name: str) -> Experiment:
    """Stop routing (``exp:<name>`` answers 409 from now on); its records stay. Stopping twice is a no-op."""
    row = get(session, name)
    if row.status != "stopped":
        row.status, row.stopped_at = "stopped", utcnow()
        session.commit()
    return row


@dataclass(frozen=True)
class Assignment:
    """The variant a request was routed to."""

    experiment_id: str
    experiment: str
    variant: str
    model: str


def experiment_name(model: str) -> str | None:
    """``exp:<name>`` -> name; None for any other model name."""
    return model[len(PREFIX) :] if model.startswith(PREFIX) else None


def _unit(experiment: str, user: str) -> float:
    """A number in [0, 1) fixed by experiment and user: the same user always lands on the same variant."""
    digest = hashlib.sha256(f"{experiment}\0{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(experiment: str, variants: list[dict[str, Any]], user: str | None = None,
         rng: random.Random | None = None) -> dict[str, Any]:  # fmt: skip
    """The variant for one request: by hash of experiment and ``user`` when given, else a random draw."""
    point = _unit(experiment, user) if user else (rng or random).random()
    total = 0.0
    for variant in variants:
        total += float(variant["weight"])
        if point < total:
            return variant
    return variants[-1]  # rounding: the weights summed to a hair under 1


def assign(session: Session, name: str, user: str | None) -> Assignment:
    """Route one request of ``exp:<name>``; an unknown experiment is a 404, a stopped one a 409."""
    row = get(session, name)
    if row.status != "running":
        raise Conflict(f"experiment {name!r} is stopped", "call one of its variants' models directly, or "
                       "create a new experiment")  # fmt: skip
    chosen = pick(row.name, row.variants, user)
    return Assignment(row.id, row.name, str(chosen["name"]), str(chosen["model"]))


def record(session: Session, assignment: Assignment, response_id: str, *, user: str | None, latency_s: float,
           prompt_tokens: int, completion_tokens: int) -> None:  # fmt: skip
    """Keep which variant answered a request (committed)."""
    session.add(ExperimentRequest(experiment_id=assignment.experiment_id, response_id=response_id,
                                  variant=assignment.variant, user=(user or None) and user[:200],
                                  latency_s=latency_s, prompt_tokens=prompt_tokens,
                                  completion_tokens=completion_tokens))  # fmt: skip
    session.commit()


def feedback(session: Session, name: str, response_id: str, *, rating: str | None = None,
             score: float | None = None, comment: str | None = None) -> ExperimentRequest:  # fmt: skip
    """Rate one response of the experiment (thumbs or a 1-5 score); rating again replaces the rating."""
    if rating is None and score is None:
        raise InvalidInput("feedback needs `rating` (up or down) or `score` (1 to 5)", 'e.g. {"response_id": '
                           '"chatcmpl-...", "rating": "up"}')  # fmt: skip
    row = get(session, name)
    found = session.scalars(select(ExperimentRequest).where(
        ExperimentRequest.response_id == response_id, ExperimentRequest.experiment_id == row.id)).first()  # fmt: skip
    if found is None:
        raise NotFound(f"experiment {row.name!r} answered no response {response_id[:80]!r}",
                       "give the `id` of a chat completion answered for exp:" + row.name)  # fmt: skip
    found.rating, found.score, found.comment, found.rated_at = rating, score, comment, utcnow()
    session.commit()
    return found


def _good() -> Any:
    """SQL: 1 for a good rating (thumbs up, or no thumbs and a score of at least ``GOOD_SCORE``)."""
    rating, score = ExperimentRequest.rating, ExperimentRequest.score
    return case((or_(rating == "up", and_(rating.is_(None), score >= GOOD_SCORE)), 1), else_=0)


def results(session: Session, row: Experiment) -> dict[str, Any]:
    """Per variant: requests, share, mean latency and tokens, good-rating rate with its 95% interval, tests."""
    rated = or_(ExperimentRequest.rating.is_not(None), ExperimentRequest.score.is_not(None))
    query = select(
        ExperimentRequest.variant, func.count(), func.avg(ExperimentRequest.latency_s),
        func.avg(ExperimentRequest.prompt_tokens), func.avg(ExperimentRequest.completion_tokens),
        func.sum(case((rated, 1), else_=0)), func.sum(_good()), func.avg(ExperimentRequest.score),
    ).where(ExperimentRequest.experiment_id == row.id).group_by(ExperimentRequest.variant)  # fmt: skip
    found = {r[0]: r[1:] for r in session.execute(query)}
    total = sum(int(r[0]) for r in found.values())
    variants: list[dict[str, Any]] = []
    for variant in row.variants:
        count, latency, prompt, completion, n_rated, good, score = found.get(
            variant["name"], (0,) + (None,) * 6
        )
        n_rated, good = int(n_rated or 0), int(good or 0)
        interval = wilson_interval(good, n_rated)
        variants.append({
            **variant, "requests": int(count), "share": count / total if total else None,
            "mean_latency_s": _num(latency), "mean_prompt_tokens": _num(prompt),
            "mean_completion_tokens": _num(completion), "rated": n_rated, "good": good,
            "good_rate": good / n_rated if n_rated else None, "ci95": list(interval) if interval else None,
            "mean_score": _num(score),
        })  # fmt: skip
    control = variants[0] if variants else None
    for variant in variants[1:]:
        test = two_proportion_z(
            control["good"], control["rated"], variant["good"], variant["rated"]
        )  # type: ignore[index]
        variant["vs_control"] = test.to_dict() if test else None
    overall = chi_square([(v["good"], v["rated"]) for v in variants])
    return {"requests": total, "control": control["name"] if control else None, "variants": variants,
            "test": overall.to_dict() if overall else None, "good_score": GOOD_SCORE}  # fmt: skip


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def public(session: Session, row: Experiment, *, with_results: bool = True) -> dict[str, Any]:
    """An experiment as the API shows it, its results included."""
    out = row.to_dict()
    out["model"] = PREFIX + row.name
    if with_results:
        out["results"] = results(session, row)
    return out
