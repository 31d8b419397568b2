"""Column names from other tools and public datasets are recognised without --map."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tunelab.cli.main import app
from tunelab.datasets import inspect_file, iter_records, normalize_file


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _turns(messages: list) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in messages]


def test_dolly_columns_become_alpaca_with_a_saved_mapping(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Summarise this.", "context": "Tuna swim fast.", "response": "Fast fish.", "category": "summarization"},
        {"instruction": "Name a colour.", "context": "", "response": "Blue.", "category": "open_qa"},
    ]  # fmt: skip
    path = _jsonl(tmp_path / "dolly.jsonl", rows)
    report = inspect_file(path)
    assert (report.format, report.errors) == ("alpaca", 0)
    assert report.mapping.columns == {"context": "input", "response": "output"}
    first, second = iter_records(path)
    assert _turns(first.messages) == [("user", "Summarise this.\nTuna swim fast."), ("assistant", "Fast fish.")]
    assert _turns(second.messages) == [("user", "Name a colour."), ("assistant", "Blue.")]
    version = normalize_file(path)
    assert version.mapping.rules() == ["context=input", "response=output"]
    assert normalize_file(path).version_id == version.version_id


def test_capitalised_csv_headers(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text("Question,Answer, System \nWhy is the sky blue?,Rayleigh scattering.,Be brief.\n", encoding="utf-8")
    report = inspect_file(path)
    assert (report.format, report.errors) == ("question_answer", 0)
    (record,) = iter_records(path)
    assert _turns(record.messages) == [
        ("system", "Be brief."), ("user", "Why is the sky blue?"), ("assistant", "Rayleigh scattering.")]  # fmt: skip


def test_query_response_and_prompt_response(tmp_path: Path) -> None:
    (qa,) = iter_records(_jsonl(tmp_path / "qr.jsonl", [{"query": "2+2?", "response": "4"}]))
    assert _turns(qa.messages) == [("user", "2+2?"), ("assistant", "4")]
    (pr,) = iter_records(_jsonl(tmp_path / "pr.jsonl", [{"prompt": "Hi", "response": "Hello!"}]))
    assert _turns(pr.messages) == [("user", "Hi"), ("assistant", "Hello!")]


def test_conversation_column_and_model_role(tmp_path: Path) -> None:
    row = {"conversation": [{"role": "user", "content": "Hi"}, {"role": "model", "content": "Hello"}]}
    (record,) = iter_records(_jsonl(tmp_path / "c.jsonl", [row]))
    assert _turns(record.messages) == [("user", "Hi"), ("assistant", "Hello")]


def test_user_mapping_combines_with_aliases(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [{"task": "Add 1 and 1.", "Response": "2"}])
    report = inspect_file(path, mapping=["task=instruction"])
    assert (report.format, report.errors) == ("alpaca", 0)
    assert report.mapping.columns == {"task": "instruction", "Response": "output"}


def test_unrecognised_columns_still_fail_with_a_hint(tmp_path: Path) -> None:
    report = inspect_file(_jsonl(tmp_path / "x.jsonl", [{"foo": "a", "bar": "b"}]))
    (issue,) = [i for i in report.issues if i.severity == "error"]
    assert issue.code == "unknown_format" and "foo, bar" in issue.message and "--map" in issue.hint


def test_anthropic_hh_transcripts_split_into_prompt_and_replies(tmp_path: Path) -> None:
    shared = "\n\nHuman: What is a tuna?\n\nAssistant: A fish.\n\nHuman: Is it fast?"
    row = {"chosen": shared + "\n\nAssistant: Yes, very fast.", "rejected": shared + "\n\nAssistant: No idea."}
    path = _jsonl(tmp_path / "hh.jsonl", [row])
    report = inspect_file(path)
    assert (report.format, report.errors) == ("preference", 0)
    (record,) = iter_records(path)
    assert _turns(record.messages) == [
        ("user", "What is a tuna?"), ("assistant", "A fish."), ("user", "Is it fast?")]  # fmt: skip
    assert _turns(record.chosen) == [("assistant", "Yes, very fast.")]
    assert _turns(record.rejected) == [("assistant", "No idea.")]


def test_full_conversation_sides_do_not_repeat_the_prompt(tmp_path: Path) -> None:
    user = {"role": "user", "content": "Pick a number."}
    row = {"prompt": "Pick a number.", "chosen": [user, {"role": "assistant", "content": "7"}],
           "rejected": [user, {"role": "assistant", "content": "no"}]}  # fmt: skip
    (record,) = iter_records(_jsonl(tmp_path / "uf.jsonl", [row]))
    assert _turns(record.messages) == [("user", "Pick a number.")]
    assert _turns(record.chosen) == [("assistant", "7")]
    assert _turns(record.rejected) == [("assistant", "no")]


def test_preference_without_any_prompt_is_a_row_error(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "p.jsonl", [{"chosen": "good", "rejected": "bad"}])
    issue = next(i for i in inspect_file(path).issues if i.severity == "error")
    assert (issue.code, issue.row) == ("missing_column", 0)
    assert "--map YOURCOLUMN=prompt" in issue.hint


def test_cli_prints_the_inferred_mapping(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"instruction": "Hi", "response": "Hello"}])
    result = CliRunner().invoke(app, ["datasets", "inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "response=output" in result.output
