"""Remote providers in the dashboard, in chromium: the system page lists them, the new-job form
sends the chosen one (hiding what a remote job cannot use), the job page says where it trains.

The studio is configured the way an operator does it (``TUNELAB_PROVIDERS`` and
``TUNELAB_PROVIDER_<NAME>_URL/_KEY``); nothing is served at those addresses and no worker
runs, so no provider is ever called: only the listing and the job-create body are tested,
the created job read back through the API.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.api.conftest import CHAT_ROWS
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect
SECRET = "sk-dashboard-never-shows-0123"


@pytest.fixture
def remote_settings(tunelab_home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Two providers from the environment: a tunelab peer without a key, OpenAI with one."""
    monkeypatch.setenv("TUNELAB_PROVIDERS", json.dumps({"peer": {"kind": "tunelab", "poll_s": 1}}))
    monkeypatch.setenv("TUNELAB_PROVIDER_PEER_URL", "http://127.0.0.1:9")  # nothing listens: never called
    monkeypatch.setenv("TUNELAB_PROVIDER_OA_URL", "https://api.openai.com/v1")
    monkeypatch.setenv("TUNELAB_PROVIDER_OA_KEY", SECRET)
    return Settings(home=tunelab_home)


@pytest.fixture
def chat_file(tmp_path: Path) -> Path:
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in CHAT_ROWS))
    return path


def test_system_page_lists_providers_without_keys(remote_settings: Settings, page: Any) -> None:
    with studio(remote_settings) as url:
        page.goto(f"{url}/ui/#/system")
        providers = page.get_by_role("table", name="Providers")
        rows = providers.locator("tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.nth(0)).to_contain_text("local")
        expect(rows.nth(0)).to_contain_text("this studio's engine")
        oa = rows.filter(has_text="oa")
        expect(oa).to_contain_text("openai")
        expect(oa).to_contain_text("https://api.openai.com")
        expect(oa.locator("td").nth(3)).to_have_text("yes")
        peer = rows.filter(has_text="peer")
        expect(peer).to_contain_text("tunelab")
        expect(peer).to_contain_text("http://127.0.0.1:9")
        expect(peer.locator("td").nth(3)).to_have_text("no (set TUNELAB_PROVIDER_PEER_KEY)")
        expect(page.get_by_role("table", name="Workers").or_(page.get_by_text("No worker has started"))).to_be_visible()
        assert SECRET not in page.content()


def test_new_job_form_sends_the_chosen_provider(remote_settings: Settings, page: Any, tiny_model_dir: Path,
                                                 chat_file: Path) -> None:  # fmt: skip
    from tunelab.jobs import datasets
    from tunelab.providers.registry import LOCAL_ONLY
    from tunelab.store.db import session_factory

    with session_factory(remote_settings.resolved_database_url)() as session:
        _, version = datasets.ingest(session, chat_file, name="chat")
    with studio(remote_settings) as url:
        page.goto(f"{url}/ui/#/new")
        where = page.get_by_label("Where it trains")
        expect(where.locator("option")).to_have_text(["local (this studio's engine)", "oa (openai)", "peer (tunelab)"])
        expect(where).to_have_value("local")
        page.get_by_label("Dataset", exact=True).select_option(version.id)
        page.get_by_label("Model path or Hub id").fill(str(tiny_model_dir))
        page.get_by_label("max_steps", exact=True).fill("3")
        page.locator("summary").filter(has_text=re.compile(r"\(\d+\)")).click()  # the advanced fields
        resume = page.get_by_label("resume_from", exact=True)
        resume.fill("latest")  # a local-only field: the server refuses it for a remote job (422)
        note = page.locator(".remote-note")
        expect(note).to_be_hidden()

        where.select_option("peer")
        expect(resume).to_be_hidden()
        expect(note).to_be_visible()
        refused = "; ".join(f"{name} ({why})" for name, why in LOCAL_ONLY.items())
        expect(note).to_have_text(f"peer trains elsewhere, so these do not apply: {refused}.")
        page.get_by_label("task", exact=True).select_option("causal_lm")  # the task rule must not bring it back
        expect(resume).to_be_hidden()
        where.select_option("local")
        expect(resume).to_be_visible()
        expect(note).to_be_hidden()
        where.select_option("peer")

        page.get_by_role("button", name="Create job").click()
        expect(page).to_have_url(re.compile(r"#/jobs/job-"))
        job_id = page.url.split("#/jobs/")[1]
        job = page.request.get(f"{url}/api/jobs/{job_id}").json()
        assert job["provider"] == "peer" and job["remote"] is None
        sent = job["config"]["hyperparameters"]
        assert sent["max_steps"] == 3 and "resume_from" not in sent
        where_line = page.locator(".job-provider")
        expect(where_line).to_have_text("Trains on provider peer: the remote job is not created yet.")
        expect(page.get_by_role("group", name="Job interventions")).to_be_hidden()  # the API would answer 409


def test_job_page_shows_the_remote_job_and_tuned_model(remote_settings: Settings, page: Any,
                                                        tiny_model_dir: Path, chat_file: Path) -> None:  # fmt: skip
    from tunelab.jobs.service import create_job
    from tunelab.providers.base import RemoteJob
    from tunelab.store.db import session_factory
    from tunelab.store.models import Job

    factory = session_factory(remote_settings.resolved_database_url)
    with factory() as session:
        job = create_job(session, {"model": str(tiny_model_dir), "dataset": str(chat_file)}, name="on-oa",
                         provider="oa", settings=remote_settings)  # fmt: skip
        local = create_job(session, {"model": str(tiny_model_dir), "dataset": str(chat_file)}, name="here")
        job_id, local_id = job.id, local.id
    with factory() as session:  # what the worker's RemoteSupervisor stores when the remote job ends
        stored = session.get(Job, job_id)
        remote = RemoteJob(provider="oa", kind="openai", job_id="ftjob-abc123", training_file="file-1",
                           fine_tuned_model="ft:gpt-4o-mini:org:on-oa:xyz", status="succeeded")  # fmt: skip
        stored.remote = remote.to_dict()
        session.commit()
    with studio(remote_settings) as url:
        page.goto(f"{url}/ui/#/jobs/{job_id}")
        expect(page.locator(".job-provider")).to_have_text(
            "Trains on provider oa (openai) as remote job ftjob-abc123, succeeded there; "
            "tuned model ft:gpt-4o-mini:org:on-oa:xyz."
        )
        page.goto(f"{url}/ui/#/jobs/{local_id}")
        expect(page.get_by_role("heading", name="here")).to_be_visible()
        expect(page.locator(".job-provider")).to_be_hidden()
        expect(page.get_by_role("group", name="Job interventions")).to_be_visible()
