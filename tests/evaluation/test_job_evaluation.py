"""The automatic evaluation after a job: a real tiny run, base against tuned, retention, never failing the job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests.api.conftest import sessions, settings  # noqa: F401

from tunelab.evaluation.service import evaluate_job
from tunelab.store.models import Artifact, Evaluation, Job, JobEvent

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def trained_run(tmp_path: Path, tiny_model_dir: Path) -> tuple[Path, dict[str, Any]]:
    """A LoRA run of two steps on identity rows, with its config.json as the worker writes it."""
    from tunelab.training import TrainConfig, run_training

    data = tmp_path / "identity.json"
    data.write_text(json.dumps(json.loads((EXAMPLES / "data" / "identity.json").read_text())[:24]))
    config = TrainConfig.model_validate({
        "model": str(tiny_model_dir), "dataset": str(data), "method": "lora", "batch_size": 8, "max_steps": 2,
        "max_length": 96, "eval_split": 0.25, "save_steps": 0,
        "output": {"eval_generations": 1, "max_new_tokens": 4, "eval_metrics": ["bleu", "rougeL"], "eval_metric_rows": 3},
    })  # fmt: skip
    run_dir = tmp_path / "run"
    run_training(config, run_dir)
    (run_dir / "config.json").write_text(json.dumps(config.model_dump(mode="json")))
    return run_dir, config.model_dump(mode="json")


def _job(sessions: sessionmaker[Session], config: dict[str, Any], run_dir: Path) -> str:  # noqa: F811
    from tunelab.jobs.events import set_status
    from tunelab.jobs.service import create_job, get_job

    with sessions() as session:
        job = create_job(session, {"model": config["model"], "dataset": config["dataset"]}, name="auto", submit=False)
        for status in ("queued", "running", "completed"):
            set_status(session, get_job(session, job.id), status)
        job.run_dir = str(run_dir)
        session.commit()
        return job.id


def _events(session: Session, job_id: str) -> list[str]:
    rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "event"))
    return [(row.data or {}).get("type") for row in rows]


def test_after_a_job_metrics_and_retention_are_stored(sessions: sessionmaker[Session],  # noqa: F811
                                                      trained_run: tuple[Path, dict[str, Any]]) -> None:  # fmt: skip
    run_dir, config = trained_run
    job_id = _job(sessions, config, run_dir)
    done = evaluate_job(sessions, job_id, run_dir)
    assert done is not None and done.status == "completed", done and done.error
    with sessions() as session:
        row = session.scalars(select(Evaluation).where(Evaluation.job_id == job_id)).one()
        summary = row.summary
        assert row.source == "job" and summary["against"] == "base"
        assert set(summary["summary"]) == {"model", "against"}
        assert set(summary["summary"]["model"]) == {"bleu", "rougeL"}
        assert summary["rows_evaluated"] == 3 and len(row.rows) == 3  # eval_metric_rows caps the eval split
        retention = summary["retention"]
        assert retention["size"] >= 50 and retention["base_correct"] is not None
        job = session.get(Job, job_id)
        assert job.status == "completed" and job.regression is row.regression is retention["regression"]
        assert "evaluation" in _events(session, job_id)
        kinds = {a.path for a in session.scalars(select(Artifact).where(Artifact.job_id == job_id))}
        assert {"results/metrics.csv", "results/metrics.json", "results/loss.svg"} <= kinds
    assert (run_dir / "results" / "loss.svg").read_text().startswith("<svg")


def test_a_failing_evaluation_never_fails_the_job(sessions: sessionmaker[Session],  # noqa: F811
                                                 trained_run: tuple[Path, dict[str, Any]]) -> None:  # fmt: skip
    run_dir, config = trained_run
    broken = {**config, "output": {**config["output"], "eval_metrics": ["bleu", "nonsense"]}}
    (run_dir / "config.json").write_text(json.dumps(broken))
    job_id = _job(sessions, config, run_dir)
    evaluate_job(sessions, job_id, run_dir)  # unknown metric: refused before a row exists, logged
    with sessions() as session:
        assert session.get(Job, job_id).status == "completed"
        assert session.get(Job, job_id).regression is None
    (run_dir / "config.json").write_text(json.dumps({**config, "model": "/nowhere/model"}))
    (run_dir / "output" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/nowhere/model",
                                                                        "peft_type": "LORA"}))  # fmt: skip
    done = evaluate_job(sessions, job_id, run_dir)
    assert done is not None and done.status == "failed" and done.error["message"]
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.status == "completed" and job.regression is None
        assert "evaluation_failed" in _events(session, job_id)


@pytest.fixture
def judge_settings(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``TUNELAB_JUDGE_*`` for this test: set them with ``apply(**env)``; the settings cache is cleared around it."""
    from tunelab.settings import get_settings

    def apply(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(f"TUNELAB_JUDGE_{name.upper()}", value)
        get_settings.cache_clear()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_job_evaluation_asks_the_configured_judge(sessions: sessionmaker[Session],  # noqa: F811
                                                      trained_run: tuple[Path, dict[str, Any]],
                                                      openai_judge: Any, judge_settings: Any) -> None:  # fmt: skip
    seen: list[tuple[str, str]] = []

    def answer(body: dict[str, Any]) -> tuple[int, str]:
        seen.append((body["model"], body["_authorization"]))
        return 200, '{"score": 7, "rationale": "close to the reference"}'

    run_dir, config = trained_run
    url = openai_judge(answer)
    judge_settings(url="http://127.0.0.1:9/v1", model="from-settings", api_key="sk-settings-only")
    output = {**config["output"], "eval_judge_url": url, "eval_judge_model": "grader"}  # the job's own judge wins
    (run_dir / "config.json").write_text(json.dumps({**config, "output": output}))
    job_id = _job(sessions, config, run_dir)
    done = evaluate_job(sessions, job_id, run_dir)
    assert done is not None and done.status == "completed", done and done.error
    with sessions() as session:
        row = session.get(Evaluation, done.id)
        assert row.summary["summary"]["model"]["judge_score"] == 7.0
        assert row.summary["judge"]["model"]["graded"] == 3 and row.summary["judge"]["url"] == url
        assert all(r["judge"]["model"]["rationale"] == "close to the reference" for r in row.rows)
        assert row.request["judge"] == {"url": url, "model": "grader"}  # the key is not stored
        assert session.get(Job, job_id).status == "completed"
    assert set(seen) == {("grader", "Bearer sk-settings-only")} and len(seen) == 6  # 3 rows, tuned and base


def test_a_failing_judge_never_fails_the_job(sessions: sessionmaker[Session],  # noqa: F811
                                             trained_run: tuple[Path, dict[str, Any]],
                                             openai_judge: Any, judge_settings: Any) -> None:  # fmt: skip
    def answer(body: dict[str, Any]) -> tuple[int, str]:
        return 503, ""

    run_dir, config = trained_run
    url = openai_judge(answer)
    judge_settings(url=url, model="grader", api_key="sk-settings-only")  # the server's judge, for every job
    job_id = _job(sessions, config, run_dir)
    done = evaluate_job(sessions, job_id, run_dir)
    assert done is not None and done.status == "completed", done and done.error
    with sessions() as session:
        row = session.get(Evaluation, done.id)
        assert "judge_score" not in row.summary["summary"]["model"] and "rougeL" in row.summary["summary"]["model"]
        assert row.summary["judge"]["model"]["failed"] == 3 and row.summary["judge"]["model"]["graded"] == 0
        assert all("HTTP 503" in r["judge"]["model"]["error"] for r in row.rows)
        job = session.get(Job, job_id)
        assert job.status == "completed" and "evaluation" in _events(session, job_id)
