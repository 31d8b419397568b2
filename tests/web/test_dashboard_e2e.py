"""The whole path through the dashboard in chromium: upload a dataset, check it, create a job on
the tiny model from the form, and watch it complete live with its curves drawn."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect

# Pixels of the loss line's colour (#2563eb) on the chart; the axes and legend use other colours.
COUNT_LOSS_PIXELS = """(canvas) => {
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - 37) < 40 && Math.abs(data[i + 1] - 99) < 40 && Math.abs(data[i + 2] - 235) < 40 && data[i + 3] > 200) n++;
  }
  return n;
}"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_upload_create_and_watch_a_job(settings: Settings, page: Any, shared_datasets: Path,
                                       tiny_model_dir: Path, tmp_path: Path) -> None:  # fmt: skip
    with studio(settings, worker=True) as url:
        page.goto(f"{url}/")
        page.get_by_role("link", name="Datasets", exact=True).click()
        page.get_by_label("File").set_input_files(str(shared_datasets / "alpaca_en_demo.json"))
        page.get_by_label("Name", exact=True).fill("alpaca-ui")
        page.get_by_role("button", name="Check without saving").click()
        issues = page.get_by_role("table", name="Validation issues")
        issues.wait_for()
        assert "duplicate_rows" in issues.inner_text()
        page.get_by_role("button", name="Upload").click()
        page.get_by_text("Stored alpaca-ui").wait_for()
        assert page.get_by_label("Upload progress").get_attribute("value") == "1"
        page.get_by_role("link", name="Train on it").click()

        page.get_by_label("Job name").fill("from-the-dashboard")
        page.get_by_label("Model path or Hub id").fill(str(tiny_model_dir))
        for name, value in {"max_steps": "4", "batch_size": "2", "max_length": "96", "max_rows": "48",
                            "save_steps": "2"}.items():  # fmt: skip
            page.get_by_label(name, exact=True).fill(value)
        page.get_by_label("output.evaluate").uncheck()
        page.get_by_label("More hyperparameters (JSON)").fill('{"eval_max_rows": 4}')
        page.get_by_label("Tags").fill("ui, e2e")
        page.get_by_role("button", name="Create job").click()

        page.wait_for_url(re.compile(r"#/jobs/job-"))
        page.locator(".badge", has_text="completed").wait_for(timeout=240_000)
        page.get_by_text("stream: ended").wait_for()
        metrics = page.get_by_role("table", name="Metrics").locator("tbody tr")
        assert metrics.count() == 4
        assert metrics.first.locator("td").first.inner_text() == "4"  # newest step first
        chart = page.locator(".chart")  # the uPlot chart component (js/chart.js)
        assert int(chart.get_attribute("data-points") or 0) >= 8  # 4 losses + 4 learning rates
        assert chart.locator(".uplot canvas").evaluate(COUNT_LOSS_PIXELS) > 50
        assert page.get_by_label("Job progress").get_attribute("value") == "1"
        assert "preflight checks done" in page.get_by_label("Job events").inner_text()
        assert page.get_by_role("log", name="Training log").inner_text().strip()
        page.get_by_role("table", name="Artifacts").wait_for()
        # A completed job is final and the service retries only failed or cancelled ones
        # (GET /api/meta "actions"), so no button is offered.
        for action in ("Pause", "Resume", "Cancel", "Retry"):
            assert page.get_by_role("button", name=action).is_disabled()
        page.screenshot(path=str(tmp_path / "job.png"), full_page=True)

        page.get_by_role("link", name="Jobs", exact=True).click()
        row = page.get_by_role("row", name=re.compile("from-the-dashboard"))
        assert "completed" in row.inner_text() and "100%" in row.inner_text()
        page.screenshot(path=str(tmp_path / "jobs.png"), full_page=True)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pause_and_resume_from_the_job_page(
    settings: Settings, page: Any, shared_datasets: Path, tiny_model_dir: Path
) -> None:
    """Pause checkpoints and stops the engine; Resume continues from there; the chart has
    every step once (the stream's cursor and the step-keyed metrics leave no duplicates)."""
    from tunelab.client import Client

    with studio(settings, worker=True) as url:
        with Client(url) as client:
            uploaded = client.upload_dataset(shared_datasets / "alpaca_en_demo.json")
            # Enough steps that the run cannot finish before the Pause click lands.
            hyper = {"max_steps": 300, "batch_size": 2, "max_length": 96, "max_rows": 200,
                     "eval_max_rows": 4, "save_steps": 50, "output": {"evaluate": False}}  # fmt: skip
            job = client.create_job(str(tiny_model_dir), uploaded["version"]["id"], hyper)
        page.goto(f"{url}/ui/#/jobs/{job['id']}")
        badge = page.locator(".page-head .badge")
        expect(badge).to_have_text("running", timeout=120_000)
        expect(page.get_by_role("table", name="Metrics").locator("tbody tr").first).to_be_visible(
            timeout=120_000
        )
        page.get_by_role("button", name="Pause").click()
        expect(badge).to_have_text("paused", timeout=120_000)
        assert page.get_by_role("button", name="Pause").is_disabled()
        page.get_by_role("button", name="Resume").click()
        expect(badge).to_have_text("completed", timeout=240_000)
        events = page.get_by_label("Job events").inner_text()
        assert "stopped at step" in events and "resumed from checkpoint" in events, events
        assert page.locator(".chart").get_attribute("data-points") == "600"  # 300 loss + 300 lr
