"""Each validation error, from a small malformed file: code, row/line and hint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.datasets import Issue, inspect_file, iter_records
from tunelab.errors import DatasetError

GOOD = {"instruction": "q", "output": "a"}


def _lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _only(path: Path, code: str, **kwargs: object) -> Issue:
    report = inspect_file(path, **kwargs)
    found = [i for i in report.issues if i.code == code]
    assert found, report.issues
    assert found[0].severity == "error" and report.errors >= 1
    assert found[0].hint
    return found[0]


def _raises(path: Path, code: str, **kwargs: object) -> DatasetError:
    with pytest.raises(DatasetError) as caught:
        list(iter_records(path, **kwargs))
    assert caught.value.code == code
    assert caught.value.hint
    return caught.value


def test_file_unreadable(tmp_path: Path) -> None:
    issue = _only(tmp_path / "missing.jsonl", "file_unreadable")
    assert "missing.jsonl" in issue.message and "path" in issue.hint
    _raises(tmp_path, "file_unreadable")  # a directory


def test_wrong_file_type(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"PK\x03\x04\x00\x00binary zip")
    assert "binary" in _only(path, "wrong_file_type").message
    parquet = tmp_path / "fake.parquet"
    parquet.write_text("instruction,output\n", encoding="utf-8")
    assert "Parquet" in _raises(parquet, "wrong_file_type").message


def test_bad_json_in_jsonl_names_the_line(tmp_path: Path) -> None:
    path = _lines(tmp_path / "d.jsonl", [json.dumps(GOOD), "", json.dumps(GOOD), '{"instruction": "q", "output": }'])
    issue = _only(path, "bad_json")
    assert (issue.line, issue.row) == (4, 2)
    assert "line 4" in issue.message
    error = _raises(path, "bad_json")
    assert error.details == {"row": 2, "line": 4}


def test_bad_json_in_array_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n  {"instruction": "q", "output": "a"},\n  {"instruction": "q" "output": "a"}\n]\n')
    issue = _only(path, "bad_json")
    assert issue.line == 3 and issue.row == 1
    assert "comma" in issue.hint


def test_missing_column(tmp_path: Path) -> None:
    path = _lines(tmp_path / "d.jsonl", [json.dumps(GOOD), json.dumps({"instruction": "q", "outptu": "a"})])
    issue = _only(path, "missing_column", format="alpaca")
    assert (issue.row, issue.line) == (1, 2)
    assert "`output`" in issue.message and "--map" in issue.hint


def test_unknown_format_lists_columns(tmp_path: Path) -> None:
    path = _lines(tmp_path / "d.jsonl", [json.dumps({"foo": 1, "bar": 2})])
    issue = _only(path, "unknown_format")
    assert "foo, bar" in issue.message and "--format" in issue.hint


def test_empty_row(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("input,output\nq,a\n , \nq2,a2\n", encoding="utf-8")
    issue = _only(path, "empty_row")
    assert (issue.row, issue.line) == (1, 3)
    assert "repair" in issue.hint
    assert inspect_file(path).quality.empty_rows == 1


def test_unknown_role(tmp_path: Path) -> None:
    row = {"conversations": [{"from": "human", "value": "hi"}, {"from": "narrator", "value": "yo"}]}
    path = _lines(tmp_path / "d.jsonl", [json.dumps(row)])
    issue = _only(path, "unknown_role")
    assert issue.row == 0 and "'narrator'" in issue.message
    assert "--map role:narrator=assistant" in issue.hint
    assert inspect_file(path, mapping=["role:narrator=assistant"]).errors == 0


def test_no_assistant_turn(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]}]  # fmt: skip
    path = _lines(tmp_path / "d.jsonl", [json.dumps(r) for r in rows])
    issue = _only(path, "no_assistant_turn")
    assert (issue.row, issue.line) == (1, 2)
    assert "assistant" in issue.hint


def test_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9 cr\x92me"}\n')
    issue = _only(path, "non_utf8")
    assert (issue.row, issue.line) == (1, 2)
    assert "UTF-8" in issue.hint and "repair" in issue.hint
    csv_path = tmp_path / "d.csv"
    csv_path.write_bytes(b"input,output\nq,a\nq2,caf\xe9\n")
    assert _raises(csv_path, "non_utf8").details["line"] == 3
    json_path = tmp_path / "d.json"
    json_path.write_bytes(b'[\n {"text": "a"},\n {"text": "\xff"}\n]')
    assert _only(json_path, "non_utf8").line == 3


def test_file_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _lines(tmp_path / "d.jsonl", [json.dumps(GOOD)] * 10)
    issue = _only(path, "file_too_large", max_bytes=100)
    assert "100" in issue.message and "TUNELAB_MAX_UPLOAD_BYTES" in issue.hint
    monkeypatch.setenv("TUNELAB_MAX_UPLOAD_BYTES", "50")
    from tunelab.settings import get_settings

    get_settings.cache_clear()
    _raises(path, "file_too_large")


def test_too_few_rows_is_a_warning(tmp_path: Path) -> None:
    path = _lines(tmp_path / "d.jsonl", [json.dumps({"instruction": f"q{i}", "output": "a"}) for i in range(5)])
    report = inspect_file(path)
    (issue,) = report.issues
    assert (issue.code, issue.severity, report.errors, report.ok) == ("too_few_rows", "warning", 0, True)
    assert "5" in issue.message and issue.hint
    assert len(list(iter_records(path))) == 5


def test_inspection_reports_every_bad_line(tmp_path: Path) -> None:
    lines = [json.dumps(GOOD)] * 3 + ["{broken"] * 30 + [json.dumps({"instruction": "x", "output": "y"})]
    report = inspect_file(_lines(tmp_path / "d.jsonl", lines))
    assert report.issue_counts["bad_json"] == 30
    assert len([i for i in report.issues if i.code == "bad_json"]) == 20  # kept issues are bounded
    assert report.quality.valid_rows == 4 and report.quality.duplicates == 2


def test_format_detected_after_many_unreadable_rows(tmp_path: Path) -> None:
    lines = ["{bad"] * 1005 + [json.dumps(GOOD)] * 2
    report = inspect_file(_lines(tmp_path / "d.jsonl", lines))
    assert report.format == "alpaca"  # detected on the first readable row, past the lookahead
    assert report.issue_counts["bad_json"] == 1005 and report.quality.valid_rows == 2
