"""The experiments pages in a real browser: create one from the form (a bad split first, refused with
its hint), then, after real chat requests and ratings through the API, the per-variant results."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def test_experiment_pages(settings: Settings, page: Any, tiny_model_dir: Path) -> None:
    from tunelab.store.catalog import add_model
    from tunelab.store.db import session_factory

    with session_factory(settings.resolved_database_url)() as session:
        add_model(session, "tiny-a", location=str(tiny_model_dir))
        add_model(session, "tiny-b", location=str(tiny_model_dir))

    with studio(settings) as url:
        page.goto(f"{url}/ui/#/jobs")
        page.get_by_role("link", name="Experiments", exact=True).first.click()
        expect(page.get_by_role("table", name="Experiments")).to_contain_text("No experiments yet")

        form = page.get_by_role("form", name="New experiment")
        form.get_by_label("Experiment name").fill("greeting")
        form.get_by_label("Variant 1 model").fill("tiny-a")
        form.get_by_label("Variant 2 model").fill("tiny-b")
        form.get_by_label("Variant 2 weight").fill("0.3")  # 0.5 + 0.3: refused, with the fix
        form.get_by_role("button", name="Create experiment").click()
        expect(page.locator(".error")).to_contain_text("sum to 0.8")
        expect(page.locator(".error-hint")).to_be_visible()

        form.get_by_label("Variant 1 weight").fill("0.7")
        form.get_by_role("button", name="Create experiment").click()
        expect(page).to_have_url(re.compile(r"#/experiments/greeting$"))
        results = page.get_by_role("table", name="Per-variant results")
        expect(results).to_contain_text("control")
        expect(page.get_by_text("No test yet")).to_be_visible()

        answered: dict[str, list[str]] = {"control": [], "tuned": []}
        with httpx.Client(base_url=url, timeout=120) as http:
            user = 0
            while min(len(ids) for ids in answered.values()) < 4:
                reply = http.post("/v1/chat/completions", json={"model": "exp:greeting", "user": f"u{user}",
                                  "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1})  # fmt: skip
                user += 1
                assert reply.status_code == 200, reply.text
                answered[reply.headers["X-Tunelab-Variant"]].append(reply.json()["id"])
            for variant, ratings in (
                ("control", ["down", "down", "down", "up"]),
                ("tuned", ["up", "up", "up", "down"]),
            ):
                for response_id, rating in zip(answered[variant], ratings, strict=False):
                    done = http.post("/api/experiments/greeting/feedback", json={"response_id": response_id,
                                                                                  "rating": rating})  # fmt: skip
                    assert done.status_code == 200, done.text
        total = sum(len(ids) for ids in answered.values())

        page.reload()
        control = results.locator('tr[data-variant="control"]')
        tuned = results.locator('tr[data-variant="tuned"]')
        expect(control).to_contain_text(str(len(answered["control"])))
        expect(control).to_contain_text("25%")  # 1 good of 4 rated
        expect(tuned).to_contain_text("75%")
        expect(tuned).to_contain_text("p = ")  # its test against the control
        expect(page.get_by_role("definition").first).to_have_text(str(total))
        expect(page.get_by_text(re.compile(r"chi-square over all variants"))).to_be_visible()

        page.get_by_role("button", name="Stop experiment").click()
        expect(page.get_by_text("stopped", exact=True)).to_be_visible()
