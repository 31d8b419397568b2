"""The sweeps pages in chromium against the real API: list, one sweep (trials table, objective
against each parameter, best trial, "Train the best"), and the new-sweep form in both modes.

Trial jobs end the way a worker ends them (``set_status`` and metric rows, as in
tests/sweeps/test_driver.py), so the page shows a finished sweep in seconds; the
driver that turns trials into jobs and results into the best is the real one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect


def _finished_sweep(settings: Settings, model: Path, data: Path) -> tuple[str, str]:
    """A 3-trial sweep whose jobs ended with eval losses 2.0, 1.5, 3.0; returns (sweep id, stored version)."""
    from tunelab.jobs import datasets
    from tunelab.jobs.events import set_status
    from tunelab.jobs.service import get_job
    from tunelab.store.db import session_factory
    from tunelab.store.models import Metric
    from tunelab.sweeps import service
    from tunelab.sweeps.driver import SweepDriver

    factory = session_factory(settings.resolved_database_url)
    with factory() as session:
        _, version = datasets.ingest(session, data, name="numbers")
        body = {"name": "ui-sweep", "model": str(model), "dataset": version.id, "n_trials": 3, "parallel": 3,
                "hyperparameters": {"max_steps": 4, "eval_steps": 2},
                "search": {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "lora.r": {"choices": [4, 8]}}}  # fmt: skip
        sweep_id = service.create_sweep(session, body).id
    driver = SweepDriver(factory)
    driver.tick()
    with factory() as session:
        for trial, loss in zip(service.list_trials(session, sweep_id), [2.0, 1.5, 3.0], strict=True):
            job = get_job(session, trial.job_id)
            set_status(session, job, "running")
            session.add(Metric(job_id=job.id, step=2, eval_loss=loss + 1))
            session.add(Metric(job_id=job.id, step=4, eval_loss=loss))
            set_status(session, job, "completed")
            session.commit()
    driver.tick()
    return sweep_id, version.id


def test_a_finished_sweep_shows_trials_charts_best_and_trains_it(settings: Settings, page: Any, tiny_model_dir: Path,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    data = tmp_path / "numbers.json"
    data.write_text(json.dumps([{"instruction": f"Say {i}.", "input": "", "output": f"{i}."} for i in range(30)]))
    sweep_id, _ = _finished_sweep(settings, tiny_model_dir, data)
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/sweeps")
        expect(page.get_by_role("link", name="Sweeps")).to_have_attribute("aria-current", "page")
        page.get_by_role("link", name="ui-sweep").click()
        expect(page).to_have_url(re.compile(f"#/sweeps/{sweep_id}$"))
        expect(page.get_by_role("heading", name="Sweep ui-sweep")).to_be_visible()
        trials = page.get_by_role("table", name="Trials")
        expect(trials.locator("tbody tr")).to_have_count(3)
        expect(trials.locator("tbody tr").nth(1)).to_contain_text("★")
        for name in ("learning_rate", "lora.r"):
            expect(page.get_by_role("figure", name=f"eval_loss against {name}")).to_have_attribute("data-points", "3")
        best = page.get_by_role("region", name="Best trial")
        expect(best).to_contain_text("Trial 1: eval_loss 1.5")
        config_id = best.locator(".config-id").inner_text()
        expect(page.get_by_role("region", name="Parameter importances")).to_contain_text("learning_rate")
        best.get_by_role("button", name="Train the best").click()
        expect(page).to_have_url(re.compile(r"#/jobs/job-"))
        job_id = page.url.split("#/jobs/")[1]
        job = page.request.get(f"{url}/api/jobs/{job_id}").json()
        assert job["configuration_id"] == config_id and job["status"] == "queued"


def test_new_sweep_form_automated_and_manual(settings: Settings, page: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "numbers.json"
    data.write_text(json.dumps([{"instruction": f"Say {i}.", "input": "", "output": f"{i}."} for i in range(30)]))
    _, version = _finished_sweep(settings, tiny_model_dir, data)
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/new")
        page.get_by_role("link", name="Automated: search hyperparameters").click()
        expect(page.get_by_role("heading", name="New sweep")).to_be_visible()
        page.get_by_label("Dataset", exact=True).select_option(version)
        page.get_by_label("Model path or Hub id").fill(str(tiny_model_dir))
        page.get_by_label("Trials", exact=True).fill("2")
        page.get_by_role("button", name="Load the best configuration so far").click()
        expect(page.locator(".best-source")).to_contain_text("of sweep swp-")
        assert json.loads(page.get_by_label("Fixed hyperparameters (JSON)").input_value())["lora"]["r"] in (4, 8)
        page.get_by_label("Fixed hyperparameters (JSON)").fill('{"max_steps": 4}')
        page.get_by_role("button", name="Propose ranges").click()
        proposal = page.get_by_role("table", name="Proposal")
        expect(proposal).to_contain_text("under 1B")
        expect(proposal).to_contain_text("max_steps")  # epochs are not searched when max_steps is set
        page.get_by_role("button", name="Start sweep").click()
        expect(page.get_by_text("automated mode", exact=False)).to_be_visible()
        expect(page.get_by_text("Why these ranges")).to_be_visible()
        page.goto(f"{url}/ui/#/sweeps/new?mode=manual")
        page.get_by_label("Dataset", exact=True).select_option(version)
        page.get_by_label("Model path or Hub id").fill(str(tiny_model_dir))
        page.get_by_label("Ranges (JSON)").fill('{"learning_rate": {"low": 0.01, "high": 0.0001}}')
        page.get_by_role("button", name="Start sweep").click()
        expect(page.get_by_role("alert")).to_contain_text("search.learning_rate")
        assert page.request.get(f"{url}/api/sweeps").json()["count"] == 2  # the refused one was not stored
