"""The evaluation pages in a real browser: start one from the form, read its metrics and rows,
see a retention regression with what was lost, and an error with its hint."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect


def _store_regressed_evaluation(settings: Settings, data: Path) -> tuple[str, str]:
    """A job's evaluation whose retention was computed from stored generations the test controls."""
    from tunelab.evaluation.retention import compare, load_probe
    from tunelab.jobs.service import create_job
    from tunelab.store.db import session_factory
    from tunelab.store.models import Evaluation

    probe = load_probe()[:3]  # Paris, Tokyo, Rome
    retention = compare(probe, ["Paris", "Tokyo", "Rome"], ["I am Tuna.", "Tokyo", "Rome"])
    summary = {"model": "identity-job", "against": "base", "metrics": ["bleu"], "rows_evaluated": 1,
               "summary": {"model": {"bleu": 42.5}, "against": {"bleu": 12.0}}, "retention": retention,
               "judge": None, "timing": {}}  # fmt: skip
    rows = [{"index": 0, "prompt": "Who are you?", "reference": "I am Tuna.", "outputs": {"model": "I am Tuna!",
             "against": "I am SmolLM."}, "scores": {"model": {"bleu": 42.5}, "against": {"bleu": 12.0}}}]  # fmt: skip
    with session_factory(settings.resolved_database_url)() as session:
        job = create_job(session, {"model": "tiny-eval", "dataset": str(data)}, name="identity-job", submit=False)
        job.regression = True
        session.add(Evaluation(id="ev-regressed", name="after training", status="completed", source="job",
                               job_id=job.id, model=job.id, request={}, summary=summary, rows=rows,
                               regression=True))  # fmt: skip
        session.commit()
        return "ev-regressed", job.id


def test_evaluation_pages(settings: Settings, page: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    from tunelab.jobs import datasets
    from tunelab.store.catalog import add_model
    from tunelab.store.db import session_factory

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n"
                            for q, a in (("What is the capital of France?", "Paris"), ("What is 2 + 2?", "4"))))  # fmt: skip
    with session_factory(settings.resolved_database_url)() as session:
        add_model(session, "tiny-eval", location=str(tiny_model_dir))
        datasets.ingest(session, data, name="qa", settings=settings)
    stored, job_id = _store_regressed_evaluation(settings, data)

    with studio(settings) as url:
        page.goto(f"{url}/ui/#/evaluations")
        page.get_by_role("link", name="Evaluations", exact=True).first.click()
        expect(page.get_by_role("table", name="Evaluations")).to_contain_text("after training")
        expect(page.get_by_role("table", name="Evaluations")).to_contain_text("regression")

        # a bad dataset: the API's message and hint, nothing started
        page.get_by_label("Model", exact=True).fill("tiny-eval")
        page.get_by_label("Dataset", exact=True).fill("no-such-dataset")
        page.get_by_role("button", name="Evaluate").click()
        expect(page.locator(".error")).to_contain_text("no-such-dataset")
        expect(page.locator(".error-hint")).to_be_visible()

        # a real evaluation from the form: the tiny model on the stored dataset
        page.get_by_label("Dataset", exact=True).fill("qa")
        page.get_by_label("General-ability probe (retention against the base)").uncheck()
        page.get_by_role("button", name="Evaluate").click()
        expect(page).to_have_url(re.compile(r"#/evaluations/ev-[0-9a-f]+$"))
        expect(page.get_by_text("completed", exact=True)).to_be_visible(timeout=240_000)
        cards = page.get_by_role("definition").locator("xpath=..")
        expect(page.locator('.metric-card[data-metric="bleu"]')).to_be_visible()
        expect(page.locator('.metric-card[data-metric="rougeL"]')).to_be_visible()
        assert cards.count() >= 1
        rows = page.get_by_role("table", name="Generations beside references")
        expect(rows).to_contain_text("What is the capital of France?")
        expect(rows).to_contain_text("Paris")
        assert rows.locator("tbody tr").count() == 2

        # the stored evaluation: base against tuned, the regression and the lost answer
        page.goto(f"{url}/ui/#/evaluations/{stored}")
        card = page.locator('.metric-card[data-metric="bleu"]')
        expect(card.locator(".metric-model")).to_have_text("42.5")
        expect(card.locator(".metric-against")).to_have_text("12")
        expect(card).to_contain_text("better")
        expect(page.locator(".retention-summary")).to_contain_text("answers 2 of 3 general probe questions right; the base answers 3")
        expect(page.locator(".retention-summary")).to_contain_text("regression")
        lost = page.get_by_role("table", name="Lost answers")
        expect(lost).to_contain_text("What is the capital of France?")
        expect(lost).to_contain_text("I am Tuna.")
        expect(page.get_by_role("table", name="Generations beside references")).to_contain_text("I am SmolLM.")

        # the job shows the flag and links to its evaluations
        page.goto(f"{url}/ui/#/jobs/{job_id}")
        flag = page.locator(".retention-flag")
        expect(flag).to_be_visible()
        expect(flag).to_contain_text("Retention regression")
        flag.get_by_role("link", name="See its evaluation").click()
        listed = page.get_by_role("table", name="Evaluations")
        expect(listed).to_contain_text("after training")
        assert listed.locator("tbody tr").count() == 1
