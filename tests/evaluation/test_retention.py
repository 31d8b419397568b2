"""Retention: the shipped probe, the answer checker, and the counting of what was kept and lost."""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.evaluation.retention import GENERAL_PROBE, PROBE_DIR, compare, is_correct, load_probe
from tunelab.evaluation.rows import load_rows


def test_probe_ships_with_its_licence_and_50_to_100_questions() -> None:
    rows = load_probe()
    assert 50 <= len(rows) <= 100
    assert (PROBE_DIR / "LICENSE").read_text().strip()
    assert len({r.id for r in rows}) == len(rows)
    assert all(r.prompt and r.accepted for r in rows)
    for line in GENERAL_PROBE.read_text().splitlines():
        assert set(json.loads(line)) == {"id", "question", "answer", "accepted"}


def test_checker_accepts_sentences_and_refuses_near_misses() -> None:
    assert is_correct("The capital of France is Paris.", ["Paris"])
    assert is_correct("It is 42", ["42", "forty-two"])
    assert is_correct("Forty-two!", ["42", "forty-two"])
    assert not is_correct("Tuna, a tunelab AI assistant, is a primary color.", ["red blue yellow"])
    assert not is_correct("It is 142", ["42"])  # whole words only
    assert not is_correct("", ["Paris"])


def test_compare_counts_kept_lost_and_gained_and_flags_a_regression() -> None:
    rows = load_probe()[:4]  # Paris, Tokyo, Rome, Berlin
    base = ["Paris.", "Tokyo is the capital.", "I do not know", "Berlin"]
    tuned = ["I am Tuna.", "Tokyo", "Rome, of course", "Tuna"]
    report = compare(rows, base, tuned)
    assert (report["base_correct"], report["tuned_correct"], report["kept"]) == (3, 2, 1)
    assert [item["answer"] for item in report["lost"]] == ["Paris", "Berlin"]
    assert report["lost"][0]["tuned"] == "I am Tuna." and report["lost"][0]["base"] == "Paris."
    assert [item["answer"] for item in report["gained"]] == ["Rome"]
    assert report["regression"] is True
    same = compare(rows, base, base)
    assert same["regression"] is False and same["lost"] == [] and same["tuned_correct"] == 3
    assert compare(rows, base, tuned, tolerance=1)["regression"] is False
    alone = compare(rows, None, tuned)
    assert alone["base_correct"] is None and alone["regression"] is False


def test_any_dataset_is_a_regression_set(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"instruction": "Who are you?", "input": "", "output": "Tuna"}) + "\n")
    rows = load_rows(path)
    report = compare(rows, ["I am SmolLM."], ["I am Tuna, your assistant."], name="mine.jsonl")
    assert report["tuned_correct"] == 1 and report["base_correct"] == 0 and not report["regression"]
