"""Evaluation rows from any dataset; a missing column or reference names the columns found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.errors import DatasetError
from tunelab.evaluation.rows import load_rows


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_known_formats_give_prompt_and_reference(tmp_path: Path) -> None:
    alpaca = _jsonl(tmp_path / "a.jsonl", [{"instruction": "Add 2 and 2", "input": "", "output": "4"}])
    rows = load_rows(alpaca)
    assert rows[0].prompt == "Add 2 and 2" and rows[0].reference == "4"
    chat = _jsonl(tmp_path / "c.jsonl", [{"messages": [
        {"role": "system", "content": "Be short."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Name?"},
        {"role": "assistant", "content": "Tuna"}]}])  # fmt: skip
    row = load_rows(chat)[0]
    assert row.reference == "Tuna" and row.prompt == "Name?" and row.messages[0]["role"] == "system"
    assert len(row.messages) == 4


def test_named_columns(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("q,gold,other\nWhat is 1+1?,2,x\nCapital of Italy?,Rome,y\n")
    rows = load_rows(path, prompt_column="q", reference_column="gold")
    assert [(r.prompt, r.reference) for r in rows] == [("What is 1+1?", "2"), ("Capital of Italy?", "Rome")]


def test_missing_reference_column_names_the_columns_found(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("q,gold,other\nWhat is 1+1?,2,x\n")
    with pytest.raises(DatasetError) as caught:
        load_rows(path, prompt_column="q", reference_column="answer")
    error = caught.value
    assert error.code == "missing_column"
    assert "'answer'" in error.message and "q, gold, other" in error.message
    assert error.details["columns_found"] == ["q", "gold", "other"]
    assert "--reference-column" in error.hint


def test_unknown_columns_without_names_list_them(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "odd.jsonl", [{"frage": "Wie?", "antwort": "So."}])
    with pytest.raises(DatasetError) as caught:
        load_rows(path)
    assert caught.value.code == "missing_column"
    assert "frage, antwort" in caught.value.message
    assert "--prompt-column" in caught.value.hint


def test_rows_without_any_reply_are_refused(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "text.jsonl", [{"text": "just text"}])
    with pytest.raises(DatasetError) as caught:
        load_rows(path)
    assert "no rows with an assistant reply" in caught.value.message and "text" in caught.value.message
