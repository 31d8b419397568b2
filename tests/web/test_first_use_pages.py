"""First-use defects of the dashboard, in a real browser against the real API (no worker).

The worker's moves (a running job failing) are made in the store, as the worker
makes them, while the page follows the job's stream like a user watching it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect


def _job(settings: Settings, dataset: Path, name: str, *moves: str) -> str:
    from tunelab.jobs.events import set_status
    from tunelab.jobs.service import create_job, get_job
    from tunelab.store.db import session_factory

    with session_factory(settings.resolved_database_url)() as session:
        config = {"model": "tiny-model", "dataset": str(dataset), "hyperparameters": {"max_steps": 2}}
        job = create_job(session, config, name=name, submit=False)
        for move in moves:
            set_status(session, get_job(session, job.id), move)
            session.commit()
        return job.id


def _fail(settings: Settings, job_id: str) -> None:
    from tunelab.jobs.events import set_status
    from tunelab.jobs.service import get_job
    from tunelab.store.db import session_factory

    with session_factory(settings.resolved_database_url)() as session:
        error = {"code": "out_of_memory", "message": "the engine ran out of memory", "hint": "lower batch_size"}
        set_status(session, get_job(session, job_id), "failed", error=error)
        session.commit()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                     {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                            for i in range(6)))  # fmt: skip
    return path


def test_a_failed_job_shows_no_pause_request_and_no_chat_link(settings: Settings, page: Any, data: Path) -> None:
    job_id = _job(settings, data, "fails-while-pausing", "queued", "running")
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/jobs/{job_id}")
        expect(page.get_by_text("stream: live")).to_be_visible()
        chat = page.get_by_role("link", name="Chat with the tuned model")
        expect(chat).to_be_hidden()
        page.get_by_role("button", name="Pause").click()
        expect(page.get_by_text("Pause requested")).to_be_visible()
        _fail(settings, job_id)  # the engine died before it could pause
        expect(page.locator(".page-head .badge")).to_have_text("failed")
        expect(page.get_by_text("Pause requested")).to_have_count(0)
        expect(page.get_by_text("the engine ran out of memory")).to_be_visible()
        expect(chat).to_be_hidden()
        assert page.get_by_role("button", name="Retry").is_enabled()
        page.get_by_role("button", name="Retry").click()  # the URL names the new job
        expect(page.locator(".page-head .badge")).to_have_text("queued")
        assert job_id not in page.url and "#/jobs/job-" in page.url
        page.goto("about:blank")


def test_a_completed_job_chats_with_its_one_tuned_model(settings: Settings, page: Any, data: Path) -> None:
    from tunelab.store.catalog import add_model, tuned_model_id
    from tunelab.store.db import session_factory

    job_id = _job(settings, data, "identity-lora", "queued", "running", "completed")
    tuned = tuned_model_id("smollm2-135m-instruct", "identity-lora", job_id)
    with session_factory(settings.resolved_database_url)() as session:
        add_model(session, tuned, name="identity-lora", source="job", location=str(data.parent))
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/jobs/{job_id}")
        chat = page.get_by_role("link", name="Chat with the tuned model")
        expect(chat).to_be_visible()
        chat.click()
        select = page.get_by_label("Model")
        expect(select).to_have_value(tuned)
        options = select.locator("option").all_inner_texts()
        assert options.count(tuned) == 1 and job_id not in options, options  # listed once, by its ft: id
        page.goto("about:blank")


def test_stored_datasets_table_has_one_body_and_aligned_columns(settings: Settings, page: Any, data: Path) -> None:
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/datasets")
        page.get_by_label("File").set_input_files(str(data))
        page.get_by_label("Name").fill("support")
        page.get_by_role("button", name="Upload").click()
        table = page.get_by_role("table", name="Datasets")
        expect(table.get_by_role("link", name="support")).to_be_visible()
        assert table.locator("tbody tbody").count() == 0 and table.locator(":scope > tbody").count() == 1
        headers = table.locator("thead th").count()
        assert [row.locator("td").count() for row in table.locator("tbody tr").all()] == [headers]
