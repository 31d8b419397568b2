"""Experiments in the store on SQLite and PostgreSQL: records, feedback and results per variant."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tunelab.errors import Conflict, InvalidInput
from tunelab.models import BUILTIN_MODELS
from tunelab.settings import Settings

MODEL = next(iter(BUILTIN_MODELS))


def test_results_per_variant(factory: sessionmaker[Session]) -> None:
    from tunelab.serving import experiments

    settings = Settings()
    variants = [
        {"name": "a", "model": MODEL, "weight": 0.25},
        {"name": "b", "model": MODEL, "weight": 0.75},
    ]
    with factory() as session:
        row = experiments.create(session, settings, "store-test", variants)
        with pytest.raises(Conflict):
            experiments.create(session, settings, "store-test", variants)
        for i in range(12):
            variant = "a" if i < 4 else "b"
            routed = experiments.Assignment(row.id, row.name, variant, MODEL)
            experiments.record(session, routed, f"r{i}", user=f"u{i}", latency_s=0.1 * (i + 1), prompt_tokens=10,
                               completion_tokens=i)  # fmt: skip
        experiments.feedback(session, "store-test", "r0", rating="up")
        experiments.feedback(session, "store-test", "r1", rating="down")
        experiments.feedback(session, "store-test", "r4", score=4)
        experiments.feedback(session, "store-test", "r5", score=2, comment="meh")
        experiments.feedback(
            session, "store-test", "r5", score=3
        )  # rating again replaces the rating
        with pytest.raises(InvalidInput):
            experiments.feedback(session, "store-test", "r6")
        results = experiments.results(session, experiments.get(session, "store-test"))
    a, b = results["variants"]
    assert results["requests"] == 12 and (a["requests"], b["requests"]) == (4, 8)
    assert a["mean_latency_s"] == pytest.approx(0.25) and a[
        "mean_completion_tokens"
    ] == pytest.approx(1.5)
    assert (a["rated"], a["good"], b["rated"], b["good"]) == (2, 1, 2, 1)
    assert b["mean_score"] == pytest.approx(3.5) and a["mean_score"] is None
    assert b["vs_control"]["p_value"] == pytest.approx(1.0)  # the same rate: no difference at all


def test_a_create_that_races_past_the_name_check_is_still_a_409(factory: sessionmaker[Session]) -> None:
    """The name check and the unique column agree: a row stored after the check is the same 409, not a 500."""
    from tunelab.serving import experiments
    from tunelab.serving.named import add_named
    from tunelab.store.models import Experiment

    settings = Settings()
    variants = [{"name": "a", "model": MODEL, "weight": 0.5}, {"name": "b", "model": MODEL, "weight": 0.5}]
    with factory() as session:
        with session.no_autoflush:  # the other create's row is not flushed yet when the check looks
            session.add(Experiment(id="exp-race-first", name="race", variants=variants))
            with pytest.raises(Conflict) as raced:
                add_named(session, Experiment(id="exp-race-second", name="race", variants=variants), "experiment",
                          "never shown: the check passed")  # fmt: skip
        assert raced.value.hint == "choose another name" and "an experiment named 'race'" in raced.value.message
        experiments.create(session, settings, "race", variants)  # the failed commit left the session usable
        with pytest.raises(Conflict) as taken:
            experiments.create(session, settings, "race", variants)
        assert "stop and reuse none" in taken.value.hint
