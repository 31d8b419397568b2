"""The automatic evaluation after a job checks the task: a classifier or regressor writes no text.

BLEU, ROUGE and the retention probe read generated replies; an encoder classifier has none. Its own
metrics (accuracy, macro F1, confusion matrix / MAE, RMSE) are measured by the engine, base against
tuned, so the after-job evaluation skips with an event that carries them instead of running generation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests.api.conftest import sessions, settings  # noqa: F401
from tests.evaluation.test_job_evaluation import _job
from tests.training.test_tasks import config_for, write_score_csv, write_sentiment_csv

from tunelab.evaluation.service import evaluate_job
from tunelab.store.models import Evaluation, Job, JobEvent


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.training.test_tasks import NEGATIVE, POSITIVE

    from tunelab.testing import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"), [" ".join(POSITIVE + NEGATIVE)] * 8)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_label_task_skips_generation_and_keeps_its_own_metrics(task: str, bert_dir: Path, tmp_path: Path,
                                                                  sessions: sessionmaker[Session]) -> None:  # noqa: F811  # fmt: skip
    from tunelab.training import run_training

    data = (write_sentiment_csv if task == "classification" else write_score_csv)(tmp_path / "rows.csv")
    # The generation metrics and the probe are asked for (the defaults): the task check must still skip them.
    run_dir = tmp_path / "run"
    result = run_training(config_for(bert_dir, data, task=task, max_steps=4, eval_split=0.25,
                                     output={"eval_metrics": ["bleu", "rougeL"], "eval_probe": True}), run_dir)  # fmt: skip
    assert result.status == "completed", result.error
    config = json.loads((run_dir / "config.json").read_text())
    assert config["task"] == task
    job_id = _job(sessions, config, run_dir)

    assert evaluate_job(sessions, job_id, run_dir) is None
    measured = json.loads((run_dir / "output" / "evaluation.json").read_text())
    expected = ["accuracy", "macro_f1", "confusion_matrix"] if task == "classification" else ["mae", "rmse"]
    with sessions() as session:
        assert session.scalars(select(Evaluation).where(Evaluation.job_id == job_id)).all() == []  # no generation
        events = [row.data for row in session.scalars(select(JobEvent).where(JobEvent.job_id == job_id,
                                                                              JobEvent.type == "event"))]  # fmt: skip
        skipped = [e for e in events if e.get("type") == "evaluation_skipped"]
        assert len(skipped) == 1 and not [e for e in events if e.get("type") in ("evaluation", "evaluation_failed")]
        event: dict[str, Any] = skipped[0]
        assert f"a {task} model writes no text" in event["message"] and "retention probe" in event["message"]
        assert event["data"]["task"] == task
        for side in ("base", "tuned"):
            for name in expected:
                assert event["data"]["metrics"][side][name] == measured[side][name], (side, name)
        assert "bleu" not in event["data"]["metrics"]["tuned"] and "perplexity" not in event["data"]["metrics"]["tuned"]
        assert session.get(Job, job_id).status == "completed" and session.get(Job, job_id).regression is None
