"""The dashboard in chromium takes its lists from GET /api/meta and draws curves with uPlot.

Nothing is stubbed: the page talks to the real API, and each check compares what the page
shows with what the API (or the store) answers, so a copy kept in the page would show.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect

LOSS_COLOUR = (37, 99, 235)  # #2563eb, the loss series
# Pixels of one colour on a canvas (the chart's axes, grid and other series use other colours).
COUNT_PIXELS = """(canvas, rgb) => {
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - rgb[0]) < 40 && Math.abs(data[i + 1] - rgb[1]) < 40
        && Math.abs(data[i + 2] - rgb[2]) < 40 && data[i + 3] > 200) n++;
  }
  return n;
}"""
STEPS = 24


def _job_with_curves(settings: Settings, dataset: str) -> str:
    """A cancelled job whose stored stream holds STEPS train lines and 3 eval lines, as a
    worker would have tailed them; its stream replays them and ends."""
    from tunelab.jobs.events import add_event
    from tunelab.jobs.service import cancel_job, create_job
    from tunelab.store.db import session_factory

    with session_factory(settings.resolved_database_url)() as session:
        config = {"model": "tiny-model", "dataset": dataset, "hyperparameters": {"max_steps": STEPS}}
        job = create_job(session, config, name="curves", submit=False)
        for step in range(1, STEPS + 1):
            add_event(session, job.id, "metrics", {
                "type": "train", "step": step, "loss": 3.0 * math.exp(-step / 8) + 0.5,
                "learning_rate": 2e-4 * (1 - step / (STEPS + 1)), "epoch": step / STEPS,
            })  # fmt: skip
            if step % 8 == 0:
                add_event(session, job.id, "metrics", {"type": "eval", "step": step, "eval_loss": 1.0 + 4 / step})
        session.commit()
        cancel_job(session, job.id)
        return job.id


def test_job_page_draws_the_loss_curve_with_uplot(
    settings: Settings, page: Any, tmp_path: Path
) -> None:
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"text": "hello"}) + "\n")
    job_id = _job_with_curves(settings, str(data))
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/jobs/{job_id}")
        expect(page.get_by_text("stream: ended")).to_be_visible()
        chart = page.get_by_role("figure", name="Training curves: loss, eval loss and learning rate by step")
        expect(chart).to_have_attribute("data-points", str(STEPS + 3 + STEPS))  # loss, eval, lr
        canvas = chart.locator(".uplot canvas")
        expect(canvas).to_have_count(1)
        assert canvas.evaluate(COUNT_PIXELS, list(LOSS_COLOUR)) > 100
        assert not chart.locator(".chart-empty").is_visible()
        legend = chart.locator(".u-legend").inner_text()
        for label in ("loss", "eval loss", "learning rate (right axis)"):
            assert label in legend, legend
        # The one chart component also draws the system page's resource history.
        page.goto(f"{url}/ui/#/system")
        expect(page.get_by_role("figure", name="CPU and RAM use over recent samples")).to_be_visible()


def test_lists_on_the_pages_are_the_apis(settings: Settings, page: Any, tmp_path: Path) -> None:
    """The status filter, the format picker, the accepted files, the action buttons, the
    priorities and the form's main fields are what GET /api/meta answers."""
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"text": "hello"}) + "\n")
    job_id = _job_with_curves(settings, str(data))
    with studio(settings) as url:
        meta = page.request.get(f"{url}/api/meta").json()
        page.goto(f"{url}/ui/#/jobs")
        status = page.get_by_label("Status")
        expect(status.locator("option")).to_have_count(len(meta["job_statuses"]) + 1)
        options = status.locator("option").evaluate_all("(nodes) => nodes.map((n) => n.value)")
        assert options == ["", *meta["job_statuses"]]
        status.select_option("cancelled")  # the filter sends the API's own value
        expect(page.get_by_role("link", name="curves")).to_be_visible()

        page.goto(f"{url}/ui/#/datasets")
        formats = page.get_by_label("Format").locator("option").evaluate_all("(nodes) => nodes.map((n) => n.value)")
        assert formats == ["", *(f["name"] for f in meta["dataset_formats"])]
        accept = page.get_by_label("File").get_attribute("accept")
        assert accept is not None and accept.split(",") == list(meta["file_suffixes"])

        page.goto(f"{url}/ui/#/jobs/{job_id}")
        expect(page.get_by_text("stream: ended")).to_be_visible()
        buttons = page.get_by_role("group", name="Job actions").get_by_role("button")
        assert [b.lower() for b in buttons.all_inner_texts()] == list(meta["actions"])
        for action, starts in meta["actions"].items():  # a cancelled job: retry only
            button = page.get_by_role("button", name=action.capitalize())
            assert button.is_enabled() == ("cancelled" in starts), action

        page.goto(f"{url}/ui/#/new")
        page.get_by_text("Fields, defaults and ranges from the API's OpenAPI schema").wait_for()
        priorities = page.get_by_label("Priority").locator("option").evaluate_all("(nodes) => nodes.map((n) => n.value)")
        assert priorities == meta["priorities"]
        assert page.get_by_label("Priority").input_value() == meta["default_priority"]
        main = next(g for g in meta["field_groups"] if g["name"] == "main")["fields"]
        shown = page.locator("fieldset:has(legend:text('Hyperparameters')) > .grid .field label")
        assert shown.all_inner_texts() == main
        methods = {m["name"]: m for m in meta["methods"]}
        page.get_by_label("method", exact=True).select_option("full")
        help_id = page.get_by_label("method", exact=True).get_attribute("aria-describedby")
        assert methods["full"]["description"] in page.locator(f"#{help_id}").inner_text()
        placeholder = page.get_by_label("learning_rate").get_attribute("placeholder") or "?"
        assert float(placeholder.split()[0]) == methods["full"]["default_learning_rate"], placeholder
