"""The new-job form's live estimate and the advisor page, in chromium against the real API.

The panel must follow the form: changing the batch size re-estimates, and what it shows is
what ``POST /api/estimate`` answers for that config. The advisor page gives the lesson's answer.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect


def _total_for(page: Any, url: str, batch_size: int) -> str:
    body = {"config": {"model": "smollm2-135m-instruct", "batch_size": batch_size}}
    return str(page.request.post(f"{url}/api/estimate", data=body).json()["memory"]["total_bytes"])


def test_panel_updates_when_the_batch_size_changes(settings: Settings, page: Any) -> None:
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/new")
        panel = page.get_by_role("region", name="Estimate")
        status = panel.get_by_role("status", name="Estimate status")
        expect(status).to_have_text("Estimate for batch size 8.", timeout=30_000)
        total = panel.locator("[data-total]")
        expect(total).to_have_attribute("data-total", _total_for(page, url, 8))
        devices = panel.get_by_role("table", name="Devices")
        expect(devices.locator("tr[data-device='H200-141GB'] td").nth(4)).to_have_text("fits")
        expect(devices.locator("tbody tr")).to_have_count(len(page.request.post(
            f"{url}/api/estimate", data={"config": {}}).json()["devices"]))
        expect(panel.get_by_role("img", name="Memory split: weights")).to_be_visible()

        page.get_by_label("batch_size", exact=True).fill("32")
        expect(status).to_have_text("Estimate for batch size 32.", timeout=30_000)
        expect(total).to_have_attribute("data-total", _total_for(page, url, 32))

        page.get_by_label("max_steps", exact=True).fill("100")
        page.get_by_label("Budget").fill("0")
        expect(panel.get_by_role("alert")).to_contain_text("`budget` must be more than 0", timeout=30_000)
        page.get_by_label("Budget").fill("5")
        expect(panel.locator(".estimate-cheapest")).to_contain_text("Cheapest within 5", timeout=30_000)


def test_advisor_page_gives_the_lessons_answer(settings: Settings, page: Any) -> None:
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/advisor")
        page.get_by_label("Data volume").select_option("large")
        page.get_by_label("Knowledge type").select_option("behavioral")
        page.get_by_label("Update frequency").select_option("rare")
        page.get_by_label("Budget").select_option("medium")
        page.get_by_label("Latency sensitive").check()
        page.get_by_role("button", name="Advise").click()
        expect(page.locator(".advice-recommendation")).to_have_text("Recommendation: Fine-tuning")
        scores = page.get_by_role("list", name="Scores")
        expect(scores).to_contain_text("Fine-tuning score: 7")
        expect(scores).to_contain_text("RAG score: 2")
        expect(page.get_by_role("table", name="Reasons").locator("tbody tr")).to_have_count(6)
        expect(page.get_by_role("link", name="Advisor")).to_have_attribute("aria-current", "page")
