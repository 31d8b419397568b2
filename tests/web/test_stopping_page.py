"""The job page says "stopping after step N" while a pause waits for the running step (chromium, real API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.api.conftest import PATHS, settings  # noqa: F401  (fixture)
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect


def _running_job(settings: Settings, dataset: Path, engine: dict[str, Any]) -> str:  # noqa: F811
    """A running job whose worker last saw the engine's heartbeat ``engine`` (as the supervisor stores it)."""
    from tunelab.jobs.events import set_status
    from tunelab.jobs.service import create_job, get_job
    from tunelab.store.db import session_factory

    with session_factory(settings.resolved_database_url)() as session:
        config = {"model": "tiny-model", "dataset": str(dataset), "hyperparameters": {"max_steps": 50}}
        job = create_job(session, config, name="slow-steps", submit=False)
        for step in PATHS["running"]:
            set_status(session, get_job(session, job.id), step)
        job = get_job(session, job.id)
        job.tail_state = {"engine": engine}
        session.commit()
        return job.id


def test_pause_shows_the_step_it_will_stop_after(settings: Settings, page: Any, tmp_path: Path) -> None:  # noqa: F811
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"text": "hello"}) + "\n")
    job_id = _running_job(settings, data, {"step": 6, "phase": "step", "stop_after": 7})
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/jobs/{job_id}")
        expect(page.get_by_role("button", name="Pause")).to_be_enabled()
        notice = page.locator(".stopping")
        expect(notice).to_be_hidden()
        page.get_by_role("button", name="Pause").click()
        expect(notice).to_be_visible()
        expect(notice).to_have_text("Pause: stopping after step 7, once that step ends and its checkpoint is "
                                    "saved (however long the step takes).")  # fmt: skip
        answer = page.request.get(f"{url}/api/jobs/{job_id}").json()
        assert answer["stopping"] == {"action": "pause", "after_step": 7}
