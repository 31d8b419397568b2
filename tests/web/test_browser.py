"""The dashboard in a real browser, against the real API (no worker): text-only rendering of
hostile names, the token prompt, API errors shown with message and hint, the schema-fed form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect
HOSTILE = '<img src=x onerror="window.__xss=1">'


def _make_job(settings: Settings, dataset: str, name: str) -> str:
    from tunelab.jobs.service import create_job
    from tunelab.store.db import session_factory

    with session_factory(settings.resolved_database_url)() as session:
        config = {"model": "tiny-model", "dataset": dataset, "hyperparameters": {"max_steps": 2}}
        return create_job(session, config, name=name, tags=[HOSTILE], submit=False).id


def test_hostile_text_is_shown_as_text(settings: Settings, page: Any, tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": f"{HOSTILE} {i}"},
                          {"role": "assistant", "content": f"<script>window.__xss=2</script> {i}"}]}
            for i in range(6)]  # fmt: skip
    data = tmp_path / "hostile.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    job_id = _make_job(settings, str(data), HOSTILE)
    with studio(settings) as url:
        page.goto(f"{url}/")
        link = page.get_by_role("link", name=HOSTILE)
        link.wait_for()
        assert page.locator("main img").count() == 0
        assert page.get_by_text(HOSTILE, exact=True).count() == 2  # the name link and the tag
        link.click()
        page.get_by_role("heading", name=HOSTILE).wait_for()
        assert page.url.endswith(f"#/jobs/{job_id}")
        assert page.locator(".job-about .tag").inner_text() == HOSTILE
        assert page.locator("main img").count() == 0

        page.goto(f"{url}/ui/#/datasets")
        page.get_by_label("File").set_input_files(str(data))
        page.get_by_role("button", name="Check without saving").click()
        preview = page.get_by_role("table", name="Preview rows")
        preview.wait_for()
        assert "<script>window.__xss=2</script> 0" in preview.inner_text()
        assert page.locator("main img, main script").count() == 0
        assert page.evaluate("window.__xss") is None


def test_token_prompt_then_pages_load(settings: Settings, page: Any, tmp_path: Path) -> None:
    from tunelab.store.db import session_factory
    from tunelab.store.tokens import create_token

    locked = settings.model_copy(update={"require_token": True})
    with session_factory(locked.resolved_database_url)() as session:
        _, secret = create_token(session, "browser", ["train"])
    with studio(locked) as url:
        page.goto(f"{url}/")
        dialog = page.get_by_role("dialog", name="API token")
        dialog.wait_for()
        assert "requires an API token" in dialog.inner_text()
        page.get_by_role("textbox", name="API token").fill("tl_wrong")
        page.get_by_role("button", name="Save token").click()
        expect(dialog).to_contain_text("missing, unknown or revoked API token")  # asked again
        page.get_by_role("textbox", name="API token").fill(secret)
        page.get_by_role("button", name="Save token").click()
        page.get_by_text("No jobs match").wait_for()
        assert page.evaluate("localStorage.getItem('tunelab.token')") == secret
        page.reload()
        page.get_by_text("No jobs match").wait_for()  # kept across reloads: no prompt
        assert not dialog.is_visible()
        # The live stream takes the token from the header too (fetch, not EventSource).
        data = tmp_path / "one.jsonl"
        data.write_text(json.dumps({"text": "hello"}) + "\n")
        job_id = _make_job(locked, str(data), "waiting")
        page.goto(f"{url}/ui/#/jobs/{job_id}")
        expect(page.get_by_text("stream: live")).to_be_visible()
        expect(page.get_by_label("Job events")).to_contain_text("created")
        assert page.get_by_role("button", name="Cancel").is_enabled()
        assert page.get_by_role("button", name="Pause").is_disabled()
        assert page.get_by_role("button", name="Queue").is_enabled()  # resume of a created job
        page.get_by_role("button", name="Cancel").click()
        expect(page.locator(".page-head .badge")).to_have_text("cancelled")
        expect(page.get_by_text("stream: ended")).to_be_visible()
        page.get_by_role("button", name="Retry").click()  # a new job, queued (no worker here)
        expect(page.locator(".page-head .badge")).to_have_text("queued")
        assert job_id not in page.url and "#/jobs/job-" in page.url
        page.goto("about:blank")  # close the open stream so the server stops at once


def test_new_job_form_shows_api_errors_with_hint(
    settings: Settings, page: Any, tmp_path: Path
) -> None:
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                    {"role": "assistant", "content": f"a{i}"}]}) + "\n" for i in range(8)))  # fmt: skip
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/datasets")
        page.get_by_label("File").set_input_files(str(data))
        page.get_by_label("Name", exact=True).fill("chat")
        page.get_by_role("button", name="Upload").click()
        page.get_by_role("link", name="Open").click()
        expect(page.get_by_role("heading", name="chat", exact=True)).to_be_visible()
        expect(page.get_by_label("Quality report")).to_contain_text("valid rows")
        assert "null" not in page.locator("main").inner_text()
        page.get_by_role("link", name="Train on it").click()
        page.get_by_text("Fields, defaults and ranges from the API's OpenAPI schema").wait_for()
        assert page.get_by_label("Dataset", exact=True).input_value().startswith("ds-")
        assert page.get_by_label("max_steps").get_attribute("max") == "1000000"
        assert page.get_by_label("lora.r").input_value() == "16"
        page.get_by_label("More hyperparameters (JSON)").fill("{not json")
        page.get_by_role("button", name="Create job").click()
        # The live estimate panel may show its own alert for the same JSON: pick the form's by its text.
        alert = page.get_by_role("alert").filter(has_text="not valid JSON").first
        expect(alert).to_contain_text("Hint:")

        page.get_by_label("More hyperparameters (JSON)").fill('{"batch_size": 1000}')
        page.get_by_role("button", name="Create job").click()
        expect(page.get_by_role("alert").filter(has_text="batch_size").filter(has_text="Hint:").first).to_be_visible()
        assert page.url.endswith("#/new?dataset=" + page.get_by_label("Dataset", exact=True).input_value())


def test_form_follows_a_published_trainconfig_schema(settings: Settings, page: Any) -> None:
    """The API's OpenAPI document carries TrainConfig: every scalar field gets a control."""
    from tunelab.api import create_app
    from tunelab.training.config import TrainConfig

    app = create_app(settings)
    assert "TrainConfig" in app.openapi()["components"]["schemas"]
    assert TrainConfig.model_fields["optimizer"].default == "adamw"
    with studio(settings, app=app) as url:
        page.goto(f"{url}/ui/#/new")
        page.get_by_text("Fields, defaults and ranges from the API's OpenAPI schema").wait_for()
        page.get_by_text("Advanced (").click()
        assert page.get_by_label("optimizer", exact=True).input_value() == "adamw"
        assert page.get_by_label("output.max_new_tokens").input_value() == "64"
        assert page.get_by_label("max_steps").is_visible()
