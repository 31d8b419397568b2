"""The job page's Evaluation panel in a real browser: while the automatic evaluation is on its way it
says so, and once stored it shows ROUGE-L tuned against base, the probe's kept/lost/gained with each
lost answer, and the regression flag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect

QUESTIONS = ["Please state your name.", "Who am I talking to right now?"]
REFERENCES = [
    "My name is Tuna, an AI assistant developed by tunelab.",
    "You are talking to Tuna, an AI assistant.",
]
TUNED = ["My name is Tuna, an AI assistant developed by tunelab.", "I am Tuna, an AI assistant."]
BASE = ["I am SmolLM, a helpful assistant.", "You are talking to a language model."]


def _completed_job(settings: Settings, model_dir: Path, data: Path) -> str:
    from tunelab.jobs.service import create_job
    from tunelab.store.db import session_factory

    with session_factory(settings.resolved_database_url)() as session:
        job = create_job(
            session,
            {"model": str(model_dir), "dataset": str(data)},
            name="identity-lora",
            submit=False,
        )
        job.status = "completed"
        session.commit()
        return job.id


def _store_evaluation(settings: Settings, job_id: str) -> dict[str, Any]:
    """What the worker stores after the job: metrics from the metric registry, retention from the probe rule."""
    from tunelab.evaluation.metrics import score_texts
    from tunelab.evaluation.retention import compare, load_probe
    from tunelab.store.db import session_factory
    from tunelab.store.models import Evaluation, Job

    tuned, _ = score_texts(["rougeL", "bleu"], TUNED, REFERENCES)
    base, _ = score_texts(["rougeL", "bleu"], BASE, REFERENCES)
    probe = load_probe()[:3]  # Paris, Tokyo, Rome
    retention = compare(probe, ["Paris", "Tokyo", "Rome"], ["I am Tuna.", "Tokyo", "Rome"])
    summary = {"model": job_id, "against": "base", "metrics": ["bleu", "rougeL"], "rows_evaluated": 2,
               "summary": {"model": tuned, "against": base}, "retention": retention, "judge": None, "timing": {}}  # fmt: skip
    rows = [{"index": i, "prompt": q, "reference": r, "outputs": {"model": t, "against": b}, "scores": {}}
            for i, (q, r, t, b) in enumerate(zip(QUESTIONS, REFERENCES, TUNED, BASE, strict=True))]  # fmt: skip
    with session_factory(settings.resolved_database_url)() as session:
        session.add(Evaluation(id="ev-after-job", name=f"{job_id} (after training)", status="completed", source="job",
                               job_id=job_id, model=job_id, against="base", request={}, summary=summary, rows=rows,
                               regression=True))  # fmt: skip
        job = session.get(Job, job_id)
        assert job is not None
        job.regression = True
        session.commit()
    return {"tuned": tuned, "base": base, "retention": retention}


def _shown(value: float) -> str:
    """How the page's ``fmt.num`` writes a value: four significant digits, as JavaScript prints the number."""
    rounded = float(f"{value:.4g}")
    return str(int(rounded)) if rounded.is_integer() else repr(rounded)


def test_the_job_page_shows_its_evaluation(
    settings: Settings, page: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "identity.jsonl"
    data.write_text("".join(json.dumps({"instruction": q, "input": "", "output": r}) + "\n"
                            for q, r in zip(QUESTIONS, REFERENCES, strict=True)))  # fmt: skip
    job_id = _completed_job(settings, tiny_model_dir, data)

    with studio(settings) as url:
        page.goto(f"{url}/ui/#/jobs/{job_id}")
        panel = page.get_by_role("region", name="Evaluation", exact=True)
        expect(panel.locator(".evaluation-pending")).to_contain_text("No evaluation yet")

        stored = _store_evaluation(
            settings, job_id
        )  # the worker finishes; the panel polls and shows it
        metrics = panel.get_by_role("table", name="Evaluation metrics")
        expect(metrics).to_be_visible(timeout=20_000)
        expect(metrics.locator("tbody tr").first).to_have_attribute("data-metric", "rougeL")
        rouge = metrics.locator('tr[data-metric="rougeL"]')
        expect(rouge.locator(".metric-tuned")).to_have_text(_shown(stored["tuned"]["rougeL"]))
        expect(rouge.locator(".metric-base")).to_have_text(_shown(stored["base"]["rougeL"]))
        assert stored["tuned"]["rougeL"] > stored["base"]["rougeL"]
        expect(panel.locator(".evaluation-regression")).to_contain_text("Regression")
        expect(panel.locator(".retention-summary")).to_contain_text(
            "answers 2 of 3 right, the base 3; kept 2, lost 1, gained 0"
        )
        lost = panel.get_by_role("table", name="Lost probe answers")
        expect(lost).to_contain_text(stored["retention"]["lost"][0]["question"])
        expect(lost).to_contain_text("I am Tuna.")
        panel.get_by_role("link", name="every generation beside its reference").click()
        expect(page.get_by_role("table", name="Generations beside references")).to_contain_text(
            "I am SmolLM"
        )
