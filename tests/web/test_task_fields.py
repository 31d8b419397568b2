"""The new-job form follows the task registry: fields a task does not use are hidden, methods it cannot train disabled.

The page reads ``tasks`` from GET /api/meta (``training/tasks.py``); each check compares
the page with that answer, so a list kept in the page would show.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect


def _visible(page: Any, name: str) -> bool:
    return page.locator(f"[name='{name}']").first.is_visible()


def test_new_job_form_hides_fields_that_do_not_apply(settings: Settings, page: Any, tmp_path: Path) -> None:
    with studio(settings) as url:
        meta = page.request.get(f"{url}/api/meta").json()
        tasks = {t["name"]: t for t in meta["tasks"]}
        page.goto(f"{url}/ui/#/new")
        page.get_by_text("Fields, defaults and ranges from the API's OpenAPI schema").wait_for()
        page.locator("details:has(summary)").first.evaluate("(d) => d.open = true")  # the advanced fields
        task = page.get_by_label("task", exact=True)
        options = task.locator("option").evaluate_all("(nodes) => nodes.map((n) => n.value)")
        assert options == ["auto", *tasks]
        assert task.input_value() == "auto"
        assert _visible(page, "packing") and _visible(page, "output.max_new_tokens")

        task.select_option("classification")
        hidden = set(tasks["classification"]["not_applicable"])
        assert {"packing", "system_prompt", "output.max_new_tokens"} <= hidden
        for name in hidden:
            if page.locator(f"[name='{name}']").count():
                assert not _visible(page, name), name
        assert _visible(page, "lora.r") and _visible(page, "learning_rate")
        method = page.get_by_label("method", exact=True)
        disabled = method.locator("option:disabled").evaluate_all("(nodes) => nodes.map((n) => n.value)")
        assert disabled == [m["name"] for m in meta["methods"] if m["name"] not in tasks["classification"]["methods"]]
        help_id = task.get_attribute("aria-describedby")
        assert tasks["classification"]["description"] in page.locator(f"#{help_id}").inner_text()

        task.select_option("seq2seq")
        assert not _visible(page, "packing") and _visible(page, "output.max_new_tokens")
        assert _visible(page, "system_prompt")
        task.select_option("causal_lm")
        assert _visible(page, "packing") and _visible(page, "system_prompt")
        assert method.locator("option:disabled").count() == 0
        assert json.dumps(tasks["causal_lm"]["not_applicable"]) == '["loss.class_weights"]'
