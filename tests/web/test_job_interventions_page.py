"""The job page's interventions and training health in chromium, against the real API: the
buttons follow GET /api/meta's `interventions`, a click records the request in the store, and a
`diagnosis` event shows with its suggested fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.api.conftest import PATHS
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect


def _job(settings: Settings, dataset: Path, status: str) -> str:
    from tunelab.jobs.events import add_event, set_status
    from tunelab.jobs.service import create_job, get_job
    from tunelab.store.db import session_factory

    with session_factory(settings.resolved_database_url)() as session:
        config = {"model": "tiny-model", "dataset": str(dataset), "hyperparameters": {"max_steps": 50}}
        job = create_job(session, config, name=f"ui-{status}", submit=False)
        for step in PATHS[status]:
            set_status(session, get_job(session, job.id), step)
            session.commit()
        add_event(session, job.id, "metrics", {"type": "train", "step": 1, "loss": 2.5, "learning_rate": 2e-4,
                                               "tokens_per_second": 800.0, "samples_per_second": 3.5,
                                               "mfu": 0.125, "update_ratio": 0.0012})
        add_event(session, job.id, "event", {"type": "diagnosis", "message": "loss flat at 2.5 over the last 20 logs",
                                             "data": {"code": "loss_flat", "step": 1, "message": "loss flat at 2.5",
                                                      "suggestion": "raise the learning rate"}})
        session.commit()
        return job.id


def _requests(settings: Settings, job_id: str) -> list[tuple[str, Any]]:
    from tunelab.jobs.service import pending_interventions
    from tunelab.store.db import session_factory

    with session_factory(settings.resolved_database_url)() as session:
        return [(action, value) for _, action, value in pending_interventions(session, job_id, 0)]


def test_interventions_and_health_on_the_job_page(settings: Settings, page: Any, tmp_path: Path) -> None:
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"text": "hello"}) + "\n")
    running, done = _job(settings, data, "running"), _job(settings, data, "cancelled")
    with studio(settings) as url:
        meta = page.request.get(f"{url}/api/meta").json()
        page.goto(f"{url}/ui/#/jobs/{running}")
        group = page.get_by_role("group", name="Job interventions")
        expect(group.get_by_role("button")).to_have_count(len(meta["interventions"]))
        health = page.locator(".diagnoses")
        expect(health).to_contain_text("loss_flat")
        expect(health).to_contain_text("raise the learning rate")
        expect(page.get_by_text("3.5 samples/s", exact=False)).to_be_visible()
        expect(page.get_by_text("12.5%")).to_be_visible()  # MFU

        page.get_by_role("button", name="Checkpoint now").click()
        expect(page.get_by_role("status").filter(has_text="checkpoint_saved")).to_be_visible()
        page.get_by_role("button", name="Set learning rate").click()  # empty: refused in the page
        expect(page.get_by_text("enter a learning rate")).to_be_visible()
        page.get_by_label("New learning rate").fill("0.5")  # out of range: the API's 422
        page.get_by_role("button", name="Set learning rate").click()
        expect(page.get_by_text("between 1e-06 and 0.01")).to_be_visible()
        page.get_by_label("New learning rate").fill("0.0001")
        page.get_by_role("button", name="Set learning rate").click()
        expect(page.get_by_role("status").filter(has_text="learning_rate_changed")).to_be_visible()
        page.get_by_role("button", name="Stop early").click()
        expect(page.get_by_role("status").filter(has_text="stopped_early")).to_be_visible()
        assert _requests(settings, running) == [("checkpoint", None), ("learning_rate", 1e-4), ("stop_early", None)]

        page.goto(f"{url}/ui/#/jobs/{done}")
        expect(page.get_by_text("stream: ended")).to_be_visible()
        for button in page.get_by_role("group", name="Job interventions").get_by_role("button").all():
            expect(button).to_be_disabled()
        expect(page.get_by_label("New learning rate")).to_be_disabled()
