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
        assert cells[1:8] == ["Meta", "Instruction Following", "causal_lm", "8B", "50,000", "1,200", "llama3.1"], cells
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


def test_the_list_shows_each_models_family(settings: Settings, page: Any, online_hub: FakeHub) -> None:
    """The family (task) column: from config.json for models on this machine, the pipeline tag for Hub results."""
    from tunelab.testing import build_tiny_encoder, build_tiny_seq2seq

    pulled = settings.models_dir / "hub"
    build_tiny_seq2seq(pulled / "acme--t5-tiny", ["a few words to build a vocabulary"], shape="t5")
    build_tiny_encoder(pulled / "acme--bert-tiny", ["a few words to build a vocabulary"])
    with studio(settings) as url:
        listed = {m["id"]: m["task"] for m in page.request.get(f"{url}/api/models").json()["data"]}
        assert listed["acme/t5-tiny"] == "seq2seq" and listed["acme/bert-tiny"] == "classification"
        assert listed["smollm2-135m-instruct"] == "causal_lm"
        page.goto(f"{url}/ui/#/models")
        results = page.get_by_role("table", name="Model search results")
        expect(results.locator("tr[data-model='acme/t5-tiny']")).to_be_visible()
        header = results.locator("thead th").evaluate_all("(nodes) => nodes.map((n) => n.textContent)")
        column = header.index("Family (task)")
        for model_id, task in (("acme/t5-tiny", "seq2seq"), ("acme/bert-tiny", "classification"),
                               ("smollm2-135m-instruct", "causal_lm")):  # fmt: skip
            row = results.locator(f"tr[data-model='{model_id}']")
            expect(row.locator("td").nth(column)).to_have_text(task)

        page.get_by_label("Search models").fill("llama")
        page.get_by_role("button", name="Search").click()
        hub_row = results.locator("tr[data-model='meta-llama/Llama-3.1-8B-Instruct']")
        expect(hub_row.locator("td").nth(column)).to_have_text("causal_lm")  # pipeline tag text-generation
        page.get_by_label("Search models").fill("qwen")
        page.get_by_label("Category", exact=True).select_option("Multimodal")
        vision = results.locator("tr[data-model='Qwen/Qwen2-VL-7B-Instruct']")
        expect(vision.locator("td").nth(column)).to_have_text("–")  # image-text-to-text: not a task tunelab trains
