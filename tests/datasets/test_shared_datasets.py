"""Every shared sample dataset is detected and normalised into the right records."""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.datasets import inspect_file, iter_records


def test_alpaca_rows(shared_datasets: Path) -> None:
    records = list(iter_records(shared_datasets / "alpaca_en_demo.json"))
    assert len(records) == 999
    first = records[0]
    assert first.kind == "chat"
    assert [m.role for m in first.messages] == ["user", "assistant"]
    assert first.messages[0].content.startswith("Describe a process of making crepes.")
    assert first.messages[1].content.startswith("Making crepes is an easy and delicious process!")
    raw = json.loads((shared_datasets / "alpaca_en_demo.json").read_text())
    with_input = next(i for i, r in enumerate(raw) if r["input"])
    content = records[with_input].messages[0].content
    assert content == f"{raw[with_input]['instruction']}\n{raw[with_input]['input']}"


def test_identity_rows(shared_datasets: Path) -> None:
    report = inspect_file(shared_datasets / "identity.json")
    assert report.format == "alpaca"
    assert report.quality.rows == 91
    assert report.issue_counts.get("too_few_rows") == 1  # 91 < 100: a warning, not an error
    assert report.errors == 0
    first = next(iter_records(shared_datasets / "identity.json"))
    assert first.messages[0].content == "hi"
    assert "{{name}}" in first.messages[1].content


def test_glaive_tool_calls(shared_datasets: Path) -> None:
    report = inspect_file(shared_datasets / "glaive_toolcall_en_demo.json")
    assert (report.file_type, report.format, report.errors) == ("json", "sharegpt", 0)
    first = next(iter_records(shared_datasets / "glaive_toolcall_en_demo.json"))
    roles = [m.role for m in first.messages]
    assert roles == ["user", "assistant", "user", "assistant", "tool", "assistant", "user", "assistant"]
    call_turn = first.messages[3]
    assert call_turn.content == ""
    assert call_turn.tool_calls[0].name == "search_recipes"
    assert json.loads(call_turn.tool_calls[0].arguments) == {
        "ingredients": ["chicken", "bell peppers", "rice"]
    }
    assert json.loads(first.messages[4].content)["recipes"][0]["name"] == "Chicken and Bell Pepper Stir Fry"
    assert json.loads(first.tools)[0]["name"] == "search_recipes"
    assert report.quality.role_counts["tool"] > 0


def test_dpo_pairs(shared_datasets: Path) -> None:
    report = inspect_file(shared_datasets / "dpo_en_demo.json")
    assert report.format == "preference"
    assert report.quality.kinds == {"preference": 300}
    first = next(iter_records(shared_datasets / "dpo_en_demo.json"))
    assert first.kind == "preference"
    assert first.messages[0].role == "user"
    assert first.messages[0].content.startswith("Hi! I'd like to create a new language game")
    assert [m.role for m in first.chosen] == ["assistant"]
    assert first.chosen[0].content.startswith("That sounds like a fun and engaging idea!")
    assert first.rejected[0].content.startswith("Hello! I'd be happy to help you create a language game")


def test_c4_text(shared_datasets: Path) -> None:
    report = inspect_file(shared_datasets / "c4_demo.jsonl")
    assert (report.file_type, report.format) == ("jsonl", "text")
    records = list(iter_records(shared_datasets / "c4_demo.jsonl"))
    assert len(records) == 300
    assert records[0].kind == "text"
    assert records[0].text.startswith("Don’t think you need all the bells and whistles?")
    assert report.preview[0].rendered.startswith("Don’t think")


def test_quality_counts_duplicates(shared_datasets: Path) -> None:
    report = inspect_file(shared_datasets / "alpaca_en_demo.json")
    rows = json.loads((shared_datasets / "alpaca_en_demo.json").read_text())
    expected = len(rows) - len({json.dumps(r, sort_keys=True) for r in rows})
    assert report.quality.duplicates == expected > 0
    assert report.issue_counts["duplicate_rows"] == 1
    assert report.quality.role_counts == {"user": 999, "assistant": 999}
    tokens = report.quality.tokens
    assert tokens.approximate and "approximate" in tokens.tokenizer
    assert 0 < tokens.median <= tokens.p95 <= tokens.max
