"""Side by side with ratings: N models on the same rows, a person's verdicts, and the win rates.

The service tests run on SQLite and PostgreSQL against a stored evaluation the
test writes; the API test runs a real evaluation of the tiny model against two
others (three sides) and rates its rows through HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from tests.api.conftest import assert_error, client, sessions, settings  # noqa: F401
from tests.evaluation.test_api import _setup, _wait

from tunelab.errors import Conflict, InvalidInput, NotFound
from tunelab.evaluation import ratings
from tunelab.store.models import Evaluation, Rating

SIDES = {"model": "tuned", "against": "base", "against_2": "other"}


def _stored(session: Session, evaluation_id: str = "ev-rated", status: str = "completed") -> str:
    rows = [{"index": i, "prompt": f"q{i}", "reference": f"a{i}", "scores": {},
             "outputs": {side: f"{side} says {i}" for side in SIDES}} for i in range(3)]  # fmt: skip
    summary = {
        "model": "tuned",
        "against": "base",
        "sides": SIDES,
        "summary": {side: {} for side in SIDES},
    }
    session.add(Evaluation(id=evaluation_id, name="three sides", status=status, source="api", model="tuned",
                           request={}, summary=summary, rows=rows))  # fmt: skip
    session.commit()
    return evaluation_id


def test_wilson_interval_matches_the_textbook_values() -> None:
    low, high = ratings.wilson_interval(8, 10) or (0, 0)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)  # Wilson (1927), z = 1.96
    low, high = ratings.wilson_interval(0, 5) or (0, 0)
    assert low == pytest.approx(0.0, abs=1e-12) and round(high, 4) == 0.4345
    assert ratings.wilson_interval(0, 0) is None


def test_rate_flip_replace_and_summarize(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        evaluation_id = _stored(session)
        ratings.rate(
            session, evaluation_id, row_index=0, side_a="model", side_b="against", verdict="better"
        )
        ratings.rate(session, evaluation_id, row_index=1, side_a="model", side_b="against", verdict="better",
                     comment="names itself", rater="ana")  # fmt: skip
        ratings.rate(
            session, evaluation_id, row_index=2, side_a="model", side_b="against", verdict="tie"
        )
        # given the other way round: stored in side order with the verdict flipped
        flipped = ratings.rate(session, evaluation_id, row_index=0, side_a="against_2", side_b="model",
                               verdict="better")  # fmt: skip
        assert (flipped.side_a, flipped.side_b, flipped.verdict) == ("model", "against_2", "worse")
        # the same rater again on the same row and pair replaces the verdict
        ratings.rate(session, evaluation_id, row_index=1, side_a="against", side_b="model", verdict="better",
                     rater="ana")  # fmt: skip
        assert session.scalar(select(func.count()).select_from(Rating)) == 4
        summary = ratings.summarize(session, evaluation_id)
    assert summary["sides"] == SIDES and summary["ratings"] == 4 and summary["rows_rated"] == 3
    pairs = {(p["side_a"], p["side_b"]): p for p in summary["pairs"]}
    assert set(pairs) == {("model", "against"), ("model", "against_2"), ("against", "against_2")}
    first = pairs[("model", "against")]
    assert (first["wins"], first["losses"], first["ties"], first["ratings"]) == (1, 1, 1, 3)
    assert first["win_rate"] == 0.5 and first["label_a"] == "tuned" and first["label_b"] == "base"
    assert first["tie_rate"] == round(1 / 3, 4)
    low, high = first["interval"]
    assert 0 < low < 0.5 < high < 1
    assert pairs[("model", "against_2")]["win_rate"] == 0.0
    unrated = pairs[("against", "against_2")]
    assert unrated["ratings"] == 0 and unrated["win_rate"] is None and unrated["interval"] is None


@pytest.mark.parametrize(
    ("change", "error", "code"),
    [
        ({"row_index": 3}, InvalidInput, "unknown_row"),
        ({"row_index": -1}, InvalidInput, "unknown_row"),
        ({"side_b": "against_9"}, InvalidInput, "unknown_side"),
        ({"side_b": "model"}, InvalidInput, "unknown_side"),
        ({"verdict": "much better"}, InvalidInput, "unknown_verdict"),
        ({"comment": "x" * (ratings.MAX_COMMENT + 1)}, InvalidInput, "invalid_input"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(factory: sessionmaker[Session], change: dict[str, Any],
                                                    error: type[Exception], code: str) -> None:  # fmt: skip
    args: dict[str, Any] = {
        "row_index": 0,
        "side_a": "model",
        "side_b": "against",
        "verdict": "better",
    } | change
    with factory() as session:
        evaluation_id = _stored(session)
        with pytest.raises(error) as raised:
            ratings.rate(session, evaluation_id, **args)
        assert raised.value.code == code and raised.value.hint  # type: ignore[attr-defined]
        assert session.scalar(select(func.count()).select_from(Rating)) == 0


def test_only_a_completed_evaluation_can_be_rated(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        running = _stored(session, "ev-running", status="running")
        with pytest.raises(Conflict, match="only a completed one"):
            ratings.rate(
                session, running, row_index=0, side_a="model", side_b="against", verdict="tie"
            )
        with pytest.raises(NotFound):
            ratings.summarize(session, "ev-nope")


def test_three_models_side_by_side_rated_over_http(client: TestClient, sessions: sessionmaker[Session],  # noqa: F811
                                                   tiny_model_dir: Path, qa_file: Path) -> None:  # fmt: skip
    from tunelab.store import catalog

    dataset = _setup(client, sessions, tiny_model_dir, qa_file)
    with sessions() as session:
        catalog.add_model(session, "tiny-b", source="local", location=str(tiny_model_dir))
    created = client.post("/api/evaluations", json={"model": "tiny", "against": ["tiny-b", "tiny"], "data": dataset,
                                                    "metrics": ["rougeL"], "probe": False, "max_new_tokens": 4})  # fmt: skip
    assert created.status_code == 202, created.text
    assert created.json()["against"] == "tiny-b, tiny"
    done = _wait(client, created.json()["id"])
    assert done["status"] == "completed", done["error"]
    assert done["summary"]["sides"] == {"model": "tiny", "against": "tiny-b", "against_2": "tiny"}
    assert set(done["summary"]["summary"]) == {"model", "against", "against_2"}
    row = done["rows"][0]
    assert set(row["outputs"]) == {"model", "against", "against_2"}
    assert (
        row["outputs"]["model"] == row["outputs"]["against_2"]
    )  # the same weights, greedy: the same reply

    chart = client.get(f"/api/evaluations/{done['id']}/chart.svg").text
    assert all(
        f"{label} ({side})" in chart for side, label in done["summary"]["sides"].items()
    )  # one bar group each

    url = f"/api/evaluations/{done['id']}/ratings"
    rated = client.post(url, json={"row": 0, "side_a": "model", "side_b": "against", "verdict": "better",
                                   "comment": "more to the point"})  # fmt: skip
    assert rated.status_code == 201, rated.text
    assert rated.json()["rater"] == "local" and rated.json()["verdict"] == "better"
    client.post(url, json={"row": 1, "side_a": "against", "side_b": "model", "verdict": "better"})
    listed = client.get(url).json()
    assert listed["count"] == 2 and [r["verdict"] for r in listed["data"]] == ["better", "worse"]
    summary = client.get(f"{url}/summary").json()
    pair = summary["pairs"][0]
    assert (pair["side_a"], pair["side_b"], pair["wins"], pair["losses"]) == (
        "model",
        "against",
        1,
        1,
    )
    assert (
        pair["win_rate"] == 0.5
        and len(pair["interval"]) == 2
        and summary["rows"] == len(done["rows"])
    )

    error = assert_error(
        client.post(url, json={"row": 99, "verdict": "better"}), 422, "unknown_row"
    )
    assert "0 to 3" in error["hint"]
    error = assert_error(
        client.post(url, json={"row": 0, "verdict": "great"}), 422, "unknown_verdict"
    )
    assert "better, worse, tie" in error["hint"]
    assert_error(
        client.post(url, json={"row": 0, "side_b": "nobody", "verdict": "tie"}), 422, "unknown_side"
    )
    assert_error(
        client.post("/api/evaluations/ev-nope/ratings", json={"row": 0, "verdict": "tie"}),
        404,
        "not_found",
    )
    assert_error(client.get("/api/evaluations/ev-nope/ratings/summary"), 404, "not_found")
    assert client.get(url).json()["count"] == 2  # nothing bad was stored
