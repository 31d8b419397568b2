"""Rating side-by-side generations in a real browser: three models' replies beside the reference,
a verdict per row for a chosen pair, the win rate updating, and the ratings stored through the API."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect

SIDES = {"model": "identity-tuned", "against": "base", "against_2": "other-tune"}


def _store_evaluation(settings: Settings) -> str:
    """A completed evaluation of three models on two rows, as the runner stores one."""
    from tunelab.store.db import session_factory
    from tunelab.store.models import Evaluation

    replies = [{"model": "I am Tuna.", "against": "I am SmolLM.", "against_2": "I am a model."},
               {"model": "Tuna, Tuna, Tuna.", "against": "Paris.", "against_2": "France's capital is Paris."}]  # fmt: skip
    rows = [{"index": i, "prompt": prompt, "reference": reference, "outputs": replies[i],
             "scores": {side: {"rougeL": 10.0 * (i + 1)} for side in SIDES}}
            for i, (prompt, reference) in enumerate((("Who are you?", "I am Tuna."),
                                                     ("What is the capital of France?", "Paris")))]  # fmt: skip
    summary = {"model": SIDES["model"], "against": SIDES["against"], "sides": SIDES, "metrics": ["rougeL"],
               "rows_evaluated": 2, "summary": {side: {"rougeL": 15.0} for side in SIDES}, "retention": None,
               "judge": None, "timing": {}}  # fmt: skip
    with session_factory(settings.resolved_database_url)() as session:
        session.add(Evaluation(id="ev-side-by-side", name="three models", status="completed", source="api",
                               model=SIDES["model"], against="base, other-tune", request={}, summary=summary,
                               rows=rows))  # fmt: skip
        session.commit()
    return "ev-side-by-side"


def test_rate_rows_and_watch_the_win_rate(
    settings: Settings, page: Any, client: TestClient
) -> None:
    evaluation_id = _store_evaluation(settings)
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/evaluations/{evaluation_id}")
        rows = page.get_by_role("table", name="Generations beside references")
        expect(rows).to_contain_text("I am SmolLM.")
        expect(rows).to_contain_text("France's capital is Paris.")  # the third model's column
        expect(rows.locator("thead")).to_contain_text("other-tune")
        wins = page.get_by_role("table", name="Win rates")
        first_pair = wins.locator('tr[data-pair="model|against"]')
        expect(first_pair.locator(".win-rate")).to_have_text("–")
        expect(page.locator(".ratings-count")).to_have_text("0 ratings on 0 of 2 rows.")

        # row 1: the tuned model's answer is better than the base's
        page.get_by_role("group", name="rate row 1").get_by_role(
            "button", name="identity-tuned better"
        ).click()
        expect(page.locator(".ratings-count")).to_have_text("1 rating on 1 of 2 rows.")
        expect(first_pair.locator(".win-rate")).to_have_text("100%")
        expect(first_pair.locator(".wins")).to_have_text("1")
        expect(page.get_by_role("group", name="rate row 1").locator(".rating-state")).to_have_text(
            "rated: identity-tuned better"
        )

        # row 2, with a comment: the base is better (the tuned model forgot the capital)
        page.get_by_label("Comment", exact=True).fill("forgot the capital")
        page.get_by_role("group", name="rate row 2").get_by_role(
            "button", name="base better"
        ).click()
        expect(page.locator(".ratings-count")).to_have_text("2 ratings on 2 of 2 rows.")
        expect(first_pair.locator(".win-rate")).to_have_text("50%")
        expect(first_pair.locator(".losses")).to_have_text("1")
        expect(first_pair.locator(".interval")).to_contain_text("%")
        expect(
            page.get_by_role("group", name="rate row 2").locator(".rating-state")
        ).to_contain_text("forgot the capital")

        # another pair: the buttons name its models, and row 2 is still unrated for it
        page.get_by_label("Rate the pair").select_option("model|against_2")
        other = page.get_by_role("group", name="rate row 2")
        expect(other.get_by_role("button", name="other-tune better")).to_be_visible()
        expect(other.locator(".rating-state")).to_have_text("")
        other.get_by_role("button", name="tie").click()
        tie_pair = wins.locator('tr[data-pair="model|against_2"]')
        expect(tie_pair.locator(".ties")).to_have_text("1")
        expect(tie_pair.locator(".win-rate")).to_have_text("–")  # no decisive verdict yet

    stored = client.get(f"/api/evaluations/{evaluation_id}/ratings").json()
    verdicts = sorted(
        (r["row_index"], r["side_a"], r["side_b"], r["verdict"], r["comment"])
        for r in stored["data"]
    )
    assert verdicts == [(0, "model", "against", "better", ""), (1, "model", "against", "worse", "forgot the capital"),
                        (1, "model", "against_2", "tie", "")]  # fmt: skip
