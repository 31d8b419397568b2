"""The model browser in chromium against the real API, whose Hub is the local Hub stand-in.

The page searches (``GET /api/models?query=``), filters by the categories GET /api/meta
lists, adds a result to the collection and checks availability; every check compares what
the page shows with what the fake Hub served or the API now answers.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.hub_fixtures import FakeHub
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect


def test_browser_searches_the_hub_filters_adds_and_checks(settings: Settings, page: Any, online_hub: FakeHub) -> None:
    with studio(settings) as url:
        meta = page.request.get(f"{url}/api/meta").json()
        page.goto(f"{url}/ui/#/models")
        status = page.get_by_role("status", name="Hub status")
        expect(status).to_contain_text("Showing models on this machine")
        options = page.get_by_label("Category", exact=True).locator("option").evaluate_all("(nodes) => nodes.map((n) => n.value)")
        assert options == ["", *meta["model_categories"]]

        page.get_by_label("Search models").fill("llama")
        page.get_by_role("button", name="Search").click()
        expect(status).to_contain_text(f"Hugging Face Hub ({online_hub.url}) searched")
        results = page.get_by_role("table", name="Model search results")
        first = results.locator("tbody tr").first
        expect(first).to_have_attribute("data-model", "meta-llama/Llama-3.1-8B-Instruct")
        cells = first.locator("td").all_inner_texts()
        assert cells[1:7] == ["Meta", "Instruction Following", "8B", "50,000", "1,200", "llama3.1"], cells
        assert any(q.get("search") == ["llama"] for path, q in online_hub.requests if path == "/api/models")

        page.get_by_label("Category", exact=True).select_option("Code Generation")
        expect(results.locator("tbody tr")).to_have_count(1)
        code_row = results.locator("tbody tr").first
        expect(code_row).to_have_attribute("data-model", "codellama/CodeLlama-7b-Instruct-hf")

        code_row.get_by_role("button", name="Add").click()
        expect(page.get_by_text("Added codellama/CodeLlama-7b-Instruct-hf to the collection (Code Generation).")).to_be_visible()
        expect(code_row.get_by_role("button", name="In collection")).to_be_disabled()
        listed = page.request.get(f"{url}/api/models").json()["data"]
        entry = next(m for m in listed if m["id"] == "codellama/CodeLlama-7b-Instruct-hf")
        assert entry["in_collection"] and entry["provider"] == "Meta" and entry["downloads"] == 20_000

        code_row.get_by_role("button", name="Check").click()
        expect(page.get_by_label("Availability of codellama/CodeLlama-7b-Instruct-hf")).to_contain_text("Available (on_hub)")

        page.get_by_label("Use case", exact=True).select_option("code")
        expect(page.get_by_role("list", name="Recommended models")).to_contain_text("starcoder2")


def test_browser_says_when_the_hub_is_not_reached(settings: Settings, page: Any) -> None:
    with studio(settings) as url:  # the suite's HF_HUB_OFFLINE=1
        page.goto(f"{url}/ui/#/models")
        page.get_by_label("Search models").fill("llama")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_role("status", name="Hub status")).to_contain_text(
            "Hugging Face Hub not reached: tunelab is offline (HF_HUB_OFFLINE is set)")
        rows = page.get_by_role("table", name="Model search results").locator("tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-model", "smollm2-135m-instruct")
        rows.first.get_by_role("button", name="Check").click()
        expect(page.get_by_label("Availability of smollm2-135m-instruct")).to_contain_text("Available (builtin)")
