"""The new-job form's Manual / Automated switch and "Load best configuration", in chromium.

Automated asks only model, dataset and a budget, shows the ranges POST /api/sweeps/propose
proposes with their reasons, and starts that sweep; Manual's "Load best configuration" fills the
form from the best evaluated configuration (here a finished sweep's best trial, made the way
tests/web/test_sweeps_page.py makes one: real driver, trial jobs ended as a worker ends them).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.web.browser import studio
from tests.web.test_sweeps_page import _finished_sweep

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect


def _numbers(tmp_path: Path) -> Path:
    data = tmp_path / "numbers.json"
    data.write_text(
        json.dumps(
            [{"instruction": f"Say {i}.", "input": "", "output": f"{i}."} for i in range(30)]
        )
    )
    return data


def test_load_best_configuration_fills_the_manual_form(settings: Settings, page: Any, tiny_model_dir: Path,
                                                       tmp_path: Path) -> None:  # fmt: skip
    sweep_id, version = _finished_sweep(settings, tiny_model_dir, _numbers(tmp_path))
    with studio(settings) as url:
        best = page.request.get(f"{url}/api/sweeps/{sweep_id}/best").json()
        params = best["trial"]["params"]
        page.goto(f"{url}/ui/#/new")
        expect(page.get_by_label("Manual: I set the hyperparameters")).to_be_checked()
        page.get_by_label("Dataset", exact=True).select_option(version)
        page.get_by_label("Model path or Hub id").fill(str(tiny_model_dir))
        page.get_by_label("batch_size", exact=True).fill(
            "3"
        )  # replaced: the form takes the configuration whole
        page.get_by_role("button", name="Load best configuration").click()
        expect(page.locator(".best-source")).to_contain_text(f"trial 1 of sweep {sweep_id}")
        expect(page.locator(".best-source")).to_contain_text(best["configuration"]["id"])
        expect(page.get_by_label("max_steps", exact=True)).to_have_value("4")
        expect(page.get_by_label("eval_steps", exact=True)).to_have_value("2")
        expect(page.get_by_label("lora.r", exact=True)).to_have_value(str(params["lora.r"]))
        rate = float(page.get_by_label("learning_rate", exact=True).input_value())
        assert rate == pytest.approx(params["learning_rate"])
        expect(page.get_by_label("batch_size", exact=True)).to_have_value(
            "8"
        )  # back to the default
        page.get_by_role("button", name="Create job").click()
        expect(page).to_have_url(re.compile(r"#/jobs/job-"))
        job = page.request.get(f"{url}/api/jobs/{page.url.split('#/jobs/')[1]}").json()
        sent = job["config"]["hyperparameters"]
        assert sent["max_steps"] == 4 and sent["lora"]["r"] == params["lora.r"]
        assert sent["learning_rate"] == pytest.approx(params["learning_rate"])


def test_load_best_without_an_evaluated_job_says_so(settings: Settings, page: Any, tiny_model_dir: Path,
                                                    tmp_path: Path) -> None:  # fmt: skip
    from tunelab.jobs import datasets
    from tunelab.store.db import session_factory

    with session_factory(settings.resolved_database_url)() as session:
        _, version = datasets.ingest(session, _numbers(tmp_path), name="numbers")
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/new")
        page.get_by_label("Dataset", exact=True).select_option(version.id)
        page.get_by_label("Model path or Hub id").fill(str(tiny_model_dir))
        page.get_by_role("button", name="Load best configuration").click()
        alert = page.get_by_role("alert").filter(has_text="no evaluated configuration")
        expect(alert).to_contain_text("Hint:")


def test_automated_mode_shows_the_proposal_and_starts_the_sweep(settings: Settings, page: Any, tiny_model_dir: Path,
                                                                tmp_path: Path) -> None:  # fmt: skip
    from tunelab.jobs import datasets
    from tunelab.store.db import session_factory

    with session_factory(settings.resolved_database_url)() as session:
        _, version = datasets.ingest(session, _numbers(tmp_path), name="numbers")
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/new")
        page.get_by_label("Dataset", exact=True).select_option(version.id)
        page.get_by_label("Model path or Hub id").fill(str(tiny_model_dir))
        page.get_by_label("Automated: search them for me (model, dataset, a limit)").check()
        expect(page.get_by_role("button", name="Create job")).to_be_hidden()
        expect(
            page.get_by_label("batch_size", exact=True)
        ).to_be_hidden()  # only model, dataset and a budget
        page.get_by_label("Search limit", exact=True).fill("0")
        page.get_by_role("button", name="Propose ranges").click()
        expect(page.get_by_role("alert")).to_contain_text(
            "n_trials"
        )  # a budget of 0 names its field
        page.get_by_label("Search limit", exact=True).fill("3")
        page.get_by_role("button", name="Propose ranges").click()
        proposal = page.get_by_role("table", name="Proposal")
        expect(proposal.locator("tr[data-field='learning_rate']")).to_contain_text("under 1B")
        expect(proposal.locator("tr[data-field='epochs']")).to_contain_text("under 1k")
        expect(proposal.locator("tr[data-field='budget']")).to_contain_text("3 trials")
        assert (
            page.request.get(f"{url}/api/sweeps").json()["count"] == 0
        )  # proposing starts nothing
        page.get_by_role("button", name="Start sweep").click()
        expect(page).to_have_url(re.compile(r"#/sweeps/swp-"))
        expect(page.get_by_text("automated mode", exact=False)).to_be_visible()
        sweep = page.request.get(f"{url}/api/sweeps").json()["data"][0]
        assert sweep["mode"] == "automated" and sweep["n_trials"] == 3
        assert sweep["search"]["learning_rate"]["low"] == pytest.approx(1e-4)
        page.goto(f"{url}/ui/#/new?mode=automated")
        expect(
            page.get_by_label("Automated: search them for me (model, dataset, a limit)")
        ).to_be_checked()
        page.get_by_label("Search limit in").select_option("minutes")
        page.get_by_label("Search limit", exact=True).fill("15")
        page.get_by_label("Dataset", exact=True).select_option(version.id)
        page.get_by_label("Model path or Hub id").fill(str(tiny_model_dir))
        page.get_by_role("button", name="Propose ranges").click()
        expect(
            page.get_by_role("table", name="Proposal").locator("tr[data-field='budget']")
        ).to_contain_text("15 minutes")
