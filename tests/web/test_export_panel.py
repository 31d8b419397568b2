"""The job page's export panel in chromium, against the real API: formats from GET /api/meta, an
export started from the page runs to completed with its progress shown, and its .zip downloads;
a job that is not completed says why nothing can be exported yet."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from tests.export.conftest import tiny_run  # noqa: F401  (the fixture: a real tiny tunelab run)
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect


def _job(settings: Settings, run: Path, status: str, tmp_path: Path) -> str:
    from tunelab.jobs.events import set_status
    from tunelab.jobs.service import create_job, get_job
    from tunelab.store.db import session_factory

    steps = {"completed": ["queued", "running", "completed"], "running": ["queued", "running"]}[status]
    with session_factory(settings.resolved_database_url)() as session:
        config = json.loads((run / "config.json").read_text())
        body = {"model": config["model"], "dataset": config["dataset"], "hyperparameters": {"max_steps": 2}}
        job = create_job(session, body, name=f"ui-export-{status}", submit=False)
        for step in steps:
            set_status(session, get_job(session, job.id), step)
        copy = tmp_path / f"run-{job.id}"
        shutil.copytree(run, copy)
        get_job(session, job.id).run_dir = str(copy)
        session.commit()
        return job.id


def test_export_panel_exports_and_downloads(settings: Settings, page: Any, tiny_run: Path, tmp_path: Path) -> None:  # noqa: F811
    done = _job(settings, tiny_run, "completed", tmp_path)
    running = _job(settings, tiny_run, "running", tmp_path)
    with studio(settings) as url:
        formats = page.request.get(f"{url}/api/meta").json()["export_formats"]
        page.goto(f"{url}/ui/#/jobs/{done}")
        panel = page.get_by_role("region", name="Export")
        choice = panel.get_by_label("Export format")
        expect(choice.locator("option")).to_have_count(len(formats))
        choice.select_option("gguf-adapter")
        expect(panel).to_contain_text(formats["gguf-adapter"])
        panel.get_by_role("button", name="Export", exact=True).click()
        row = panel.locator("tr[data-export='1']")
        expect(row).to_contain_text("gguf-adapter")
        expect(row.locator(".badge")).to_have_text("completed", timeout=120_000)
        expect(row.get_by_role("progressbar")).to_have_attribute("value", "1")
        with page.expect_download() as info:
            row.get_by_role("button", name="Download").click()
        archive = tmp_path / "export.zip"
        info.value.save_as(archive)
        assert "adapter.gguf" in zipfile.ZipFile(archive).namelist()
        with page.expect_download() as script:
            panel.get_by_role("button", name="Download training script").click()
        assert script.value.suggested_filename == f"train_{done}.py"

        page.goto(f"{url}/ui/#/jobs/{running}")
        panel = page.get_by_role("region", name="Export")
        expect(panel).to_contain_text("Exports are made from a completed job; this one is running.")
        expect(panel.get_by_role("button", name="Export", exact=True)).to_be_disabled()


def test_export_panel_pushes_to_the_hub_and_shows_a_refusal(settings: Settings, page: Any, tiny_run: Path,  # noqa: F811
                                                            tmp_path: Path, online_hub: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Repo id + "Push to the Hub": the row links the pushed repo; a refused token shows the Hub's error
    while the export itself stays downloadable."""
    monkeypatch.setenv("HF_TOKEN", "hf_fake_write_token")
    done = _job(settings, tiny_run, "completed", tmp_path)
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/jobs/{done}")
        panel = page.get_by_role("region", name="Export")
        panel.get_by_label("Export format").select_option("adapter")
        panel.get_by_label("Hub repository").fill("alice/numbers-ui")
        panel.get_by_label("Push to the Hub").check()
        panel.get_by_role("button", name="Export", exact=True).click()
        row = panel.locator("tr[data-export='1']")
        expect(row.locator(".badge")).to_have_text("completed", timeout=120_000)
        link = row.get_by_role("link", name=f"{online_hub.url}/alice/numbers-ui")
        expect(link).to_have_attribute("href", f"{online_hub.url}/alice/numbers-ui")
        assert online_hub.repos["alice/numbers-ui"]["private"] is True
        assert "adapter_config.json" in online_hub.repos["alice/numbers-ui"]["files"]

        monkeypatch.setenv("HF_TOKEN", "hf_revoked")
        panel.get_by_label("Hub repository").fill("alice/refused")
        panel.get_by_label("Public repository").check()
        panel.get_by_role("button", name="Export", exact=True).click()
        refused = panel.locator("tr[data-export='2']")
        expect(refused.locator(".badge")).to_have_text("completed", timeout=120_000)
        expect(refused.locator(".hub-push [role=alert]")).to_contain_text("pushing to alice/refused failed")
        expect(refused.locator(".hub-push .error-hint")).to_contain_text("token can write")
        expect(refused.get_by_role("button", name="Download")).to_be_visible()
        assert "alice/refused" not in online_hub.repos

        panel.get_by_label("Hub repository").fill("no-slash")
        panel.get_by_role("button", name="Export", exact=True).click()
        expect(panel.get_by_role("alert").first).to_contain_text("user/name")
