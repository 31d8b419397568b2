"""The compare page in a real browser: two tiny-model jobs picked in the jobs list, their loss and
eval-loss curves overlaid on one chart (one colour each), their finals side by side and the
hyperparameter that differs highlighted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect

# Pixels near an RGB colour on the chart's canvas: each job's curves are drawn in its own colour.
COUNT_PIXELS = """(canvas, rgb) => {
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - rgb[0]) < 40 && Math.abs(data[i + 1] - rgb[1]) < 40 && Math.abs(data[i + 2] - rgb[2]) < 40 && data[i + 3] > 200) n++;
  }
  return n;
}"""
FIRST, SECOND = (37, 99, 235), (220, 104, 3)  # compare.js COLOURS[0], COLOURS[1]


def _jobs_with_curves(settings: Settings, tiny_model_dir: Path, data: Path) -> list[str]:
    """Two jobs on the tiny model that differ in learning rate, with the metrics the worker ingests."""
    from tunelab.jobs.service import create_job
    from tunelab.jobs.tailer import upsert_metric
    from tunelab.store.db import session_factory

    curves = {1e-4: [2.4, 2.1, 1.9, 1.8], 5e-4: [2.4, 1.6, 1.2, 1.0]}
    ids = []
    with session_factory(settings.resolved_database_url)() as session:
        for learning_rate, losses in curves.items():
            config = {"model": str(tiny_model_dir), "dataset": str(data),
                      "hyperparameters": {"max_steps": 4, "learning_rate": learning_rate}}  # fmt: skip
            job = create_job(session, config, name=f"lr {learning_rate:g}", submit=False)
            for step, loss in enumerate(losses, start=1):
                upsert_metric(
                    session,
                    job.id,
                    {
                        "step": step,
                        "loss": loss,
                        **({"eval_loss": loss + 0.2} if step % 2 == 0 else {}),
                    },
                )
            ids.append(job.id)
        session.commit()
    return ids


def test_compare_two_jobs_from_the_list(
    settings: Settings, page: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "chat.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
        * 8
    )
    first, second = _jobs_with_curves(settings, tiny_model_dir, data)
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/jobs")
        compare = page.get_by_role("link", name=re.compile("Compare selected"))
        page.get_by_label("select lr 0.0001").check()
        expect(compare).to_be_hidden()  # one job is nothing to compare
        page.get_by_label("select lr 0.0005").check()
        expect(compare).to_have_text("Compare selected (2)")
        compare.click()
        expect(page).to_have_url(re.compile(r"#/compare\?ids=job-"))

        chart = page.get_by_role("figure", name="Loss and eval loss of the compared jobs")
        expect(chart).to_have_attribute(
            "data-points", "12"
        )  # 2 jobs x (4 loss + 2 eval-loss points)
        expect(chart).to_have_attribute("data-series", "4")
        legend = chart.locator(".u-legend")
        for label in (
            "lr 0.0001 loss",
            "lr 0.0001 eval loss",
            "lr 0.0005 loss",
            "lr 0.0005 eval loss",
        ):
            expect(legend).to_contain_text(label)
        canvas = chart.locator("canvas")
        assert (
            canvas.evaluate(COUNT_PIXELS, FIRST) > 50 and canvas.evaluate(COUNT_PIXELS, SECOND) > 50
        )

        finals = page.get_by_role("table", name="Final metrics")
        expect(finals.locator("tr", has_text="final loss")).to_contain_text("1.8")
        expect(finals.locator("tr", has_text="final loss")).to_contain_text("1")
        expect(finals.locator("tr", has_text="best eval loss")).to_contain_text("1.2")

        differing = page.get_by_role("table", name="Hyperparameters that differ")
        row = differing.locator('tr[data-name="learning_rate"]')
        expect(row).to_have_class(re.compile(r"\bdiffers\b"))
        expect(row).to_contain_text("0.0001")
        expect(row).to_contain_text("0.0005")
        assert differing.locator("tbody tr").count() == 1  # nothing else differs
        page.get_by_text(re.compile(r"\d+ hyperparameters the same in every job")).click()
        same = page.get_by_role("table", name="Hyperparameters the same")
        expect(same.locator('tr[data-name="max_steps"]')).not_to_have_class(re.compile("differs"))
        page.get_by_role("link", name="lr 0.0005").first.click()
        expect(page).to_have_url(re.compile(rf"#/jobs/{second}$"))

        # a bad id: the API's message and hint, no chart
        page.goto(f"{url}/ui/#/compare?ids={first},job-nope")
        expect(page.locator(".error")).to_contain_text("job-nope")
        expect(page.locator(".error-hint")).to_be_visible()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_compare_two_trained_tiny_model_jobs(
    settings: Settings, page: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The same overlay for two jobs the worker really trained on the tiny model (curves from the engine)."""
    import time

    import httpx

    from tunelab.jobs import datasets
    from tunelab.store.catalog import add_model
    from tunelab.store.db import session_factory

    data = tmp_path / "chat.jsonl"
    data.write_text("".join(f'{{"messages": [{{"role": "user", "content": "Say {i}"}}, {{"role": "assistant", "content": "{i}!"}}]}}\n'
                            for i in range(24)))  # fmt: skip
    with session_factory(settings.resolved_database_url)() as session:
        add_model(session, "tiny-compare", location=str(tiny_model_dir))
        datasets.ingest(session, data, name="say", settings=settings)
    with studio(settings, worker=True) as url:
        ids = []
        for learning_rate in (1e-4, 1e-3):
            hyper = {"max_steps": 4, "batch_size": 2, "max_length": 64, "eval_steps": 2, "eval_max_rows": 4,
                     "learning_rate": learning_rate, "output": {"evaluate": False}}  # fmt: skip
            body = {"name": f"trained lr {learning_rate:g}", "configuration": {"model": "tiny-compare", "dataset": "say",
                                                                                "hyperparameters": hyper}}  # fmt: skip
            created = httpx.post(f"{url}/api/jobs", json=body, timeout=30)
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        deadline = time.monotonic() + 500
        while time.monotonic() < deadline:
            statuses = [
                httpx.get(f"{url}/api/jobs/{job_id}", timeout=30).json()["status"] for job_id in ids
            ]
            if all(s in ("completed", "failed", "cancelled") for s in statuses):
                break
            time.sleep(1)
        assert statuses == ["completed", "completed"], statuses

        page.goto(f"{url}/ui/#/jobs")
        page.get_by_label("select trained lr 0.0001").check()
        page.get_by_label("select trained lr 0.001").check()
        page.get_by_role("link", name="Compare selected (2)").click()
        chart = page.get_by_role("figure", name="Loss and eval loss of the compared jobs")
        expect(chart).to_have_attribute("data-series", "4")
        assert int(chart.get_attribute("data-points") or 0) >= 2 * (
            4 + 1
        )  # 4 loss points and an eval each
        canvas = chart.locator("canvas")
        assert (
            canvas.evaluate(COUNT_PIXELS, FIRST) > 50 and canvas.evaluate(COUNT_PIXELS, SECOND) > 50
        )
        row = page.get_by_role("table", name="Hyperparameters that differ").locator(
            'tr[data-name="learning_rate"]'
        )
        expect(row).to_have_class(re.compile(r"\bdiffers\b"))
        expect(row).to_contain_text("0.001")
