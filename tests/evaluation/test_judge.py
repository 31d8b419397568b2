"""The LLM judge: robust score parsing, a real OpenAI-compatible server, failures kept per row."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.api.live import free_port, start_api, stop

from tunelab.evaluation.judge import JudgeConfig, judge_rows, parse_score
from tunelab.evaluation.run import EvalRequest, run_evaluation


@pytest.mark.parametrize(("text", "score"), [
    ('{"score": 8, "rationale": "Correct and complete."}', 8.0),
    ('Sure! ```json\n{"score": "7", "rationale": "ok"}\n```', 7.0),
    ("Score: 9\nRationale: matches the reference", 9.0),
    ("SCORE = 3/10 because it is vague", 3.0),
    ("I'd give it 6/10.", 6.0),
    ("10", 10.0),
    ("  4. Mostly right.", 4.0),
    ("score: 11 (too high), so 5/10", 5.0),
])  # fmt: skip
def test_parse_score_reads_common_shapes(text: str, score: float) -> None:
    assert parse_score(text)[0] == score


@pytest.mark.parametrize("text", ["", "The reply is good.", "score: 0", "score: 42", '{"score": "high"}'])
def test_parse_score_refuses_what_has_no_1_to_10_score(text: str) -> None:
    assert parse_score(text)[0] is None


def test_rationale_is_kept() -> None:
    assert parse_score('{"score": 8, "rationale": "Correct."}')[1] == "Correct."
    assert parse_score("Score: 9\nRationale: matches the reference")[1] == "matches the reference"


def test_judge_scores_rows_and_keeps_each_failure(openai_judge: Callable[..., str]) -> None:
    seen: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> tuple[int, str]:
        seen.append(body)
        prompt = body["messages"][-1]["content"]
        if "broken" in prompt:
            return 500, ""
        return 200, '{"score": 2, "rationale": "wrong"}' if "Lyon" in prompt else "Score: 9\nRationale: right"

    url = openai_judge(answer)
    results = judge_rows(JudgeConfig(url=url, model="grader"), [
        ("Capital of France?", "Paris", "Paris"), ("Capital of France?", "Paris", "Lyon"),
        ("Capital of France?", "Paris", "broken")])  # fmt: skip
    assert [r["score"] for r in results] == [9.0, 2.0, None]
    assert results[1]["rationale"] == "wrong"
    assert "HTTP 500" in results[2]["error"]
    assert seen[0]["model"] == "grader" and seen[0]["temperature"] == 0
    assert "REFERENCE ANSWER:\nParis" in seen[0]["messages"][-1]["content"]


def test_unreachable_judge_is_an_error_per_row_and_the_evaluation_completes(tiny_model_dir: Path, qa_file: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    result = run_evaluation(EvalRequest(model=str(tiny_model_dir), data=str(qa_file), metrics=["bleu"],
                                        judge=JudgeConfig(url=url, model="x", timeout_s=5), max_new_tokens=4))  # fmt: skip
    assert result["rows_evaluated"] == 4
    assert "bleu" in result["summary"]["model"] and "judge_score" not in result["summary"]["model"]
    errors = [row["judge"]["model"]["error"] for row in result["rows"]]
    assert all(e and "unreachable" in e and url in e for e in errors), errors
    assert result["judge"]["model"] == {"judge_score": None, "graded": 0, "failed": 4, "first_error": errors[0]}


#: What the judge model is fine-tuned to answer, in the ``Score: N / Rationale:`` shape ``parse_score`` reads.
JUDGE_REPLY = "Score: 8\nRationale: close to the reference."
#: A short rubric keeps the judge prompts, and so the judge's fine-tuning, small.
RUBRIC = "Grade the ASSISTANT REPLY from 1 to 10 against the REFERENCE ANSWER."


def _judge_model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """The tiny model fine-tuned by tunelab's engine to grade: every judge prompt gets ``JUDGE_REPLY``.

    The prompts are the judge's own
    (``judge_prompt`` with ``RUBRIC``) over varied questions and replies, so the
    model learns the answer to the prompt's shape, not to one string; 60 full
    fine-tuning steps at a constant learning rate are enough for a model this
    small to write it greedily (40 decaying ones were not: it wrote "Rationale: 8").
    """
    import json

    from tunelab.evaluation.judge import judge_prompt
    from tunelab.training import TrainConfig, run_training

    questions = [("What is the capital of France?", "Paris"), ("What is 2 + 2?", "4"),
                 ("Who wrote Romeo and Juliet?", "Shakespeare"), ("Name a primary color.", "Red"),
                 ("What is the largest ocean?", "The Pacific"), ("How many legs has a spider?", "Eight")]  # fmt: skip
    replies = ["", "I do not know.", "Paris", "It is 4.", "Blue, I think", "The number is 7.", "!!", "Shakespeare"]
    rows = [{"messages": [*judge_prompt(RUBRIC, q, ref, reply), {"role": "assistant", "content": JUDGE_REPLY}]}
            for q, ref in questions for reply in replies]  # fmt: skip
    data = tmp_path / "judge-train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = TrainConfig.model_validate({
        "model": str(tiny_model_dir), "dataset": str(data), "method": "full", "learning_rate": 1e-2,
        "scheduler": "constant", "warmup_ratio": 0.0, "batch_size": 4, "max_steps": 60, "max_length": 1024,
        "save_steps": 0, "eval_split": 0.05,
        "output": {"evaluate": False},
    })  # fmt: skip
    run = tmp_path / "judge-run"
    run_training(config, run)
    return run / "output"


@pytest.mark.slow
def test_judge_through_a_second_tunelab_server(tiny_model_dir: Path, qa_file: Path, tmp_path: Path) -> None:
    """The judge is another tunelab serving a model tuned to grade: real scores and rationales over HTTP."""
    from tunelab.store import catalog
    from tunelab.store.db import session_factory

    judge_dir = _judge_model(tiny_model_dir, tmp_path)
    home = tmp_path / "judge-home"
    home.mkdir()
    with session_factory(f"sqlite:///{home / 'tunelab.db'}")() as session:
        catalog.add_model(session, "judge-tiny", source="local", location=str(judge_dir))
    port = free_port()
    server: subprocess.Popen[bytes] = start_api(home, port, tmp_path / "judge.log")
    try:
        config = JudgeConfig(url=f"http://127.0.0.1:{port}/v1", model="judge-tiny", rubric=RUBRIC, max_tokens=24,
                             timeout_s=300)
        result = run_evaluation(EvalRequest(model=str(tiny_model_dir), data=str(qa_file), metrics=["rougeL"],
                                            judge=config, max_new_tokens=4, max_rows=3))  # fmt: skip
    finally:
        stop(server)
    judged = [row["judge"]["model"] for row in result["rows"]]
    assert len(judged) == 3
    for j in judged:  # each row's grade came from the served model's own reply, parsed
        assert j["error"] is None and j["score"] == 8.0, j
        assert j["rationale"].startswith("close to the reference") and j["raw"].startswith("Score: 8"), j
    assert result["judge"]["model"]["graded"] == 3 and result["judge"]["model"]["failed"] == 0
    assert result["summary"]["model"]["judge_score"] == 8.0
