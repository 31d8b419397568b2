"""Normalised, content-addressed versions and repair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.datasets import iter_records, load_version, normalize_file, repair_file, repair_version
from tunelab.datasets.versions import list_versions
from tunelab.errors import DatasetError, NotFound


def test_normalise_twice_gives_same_id_and_does_not_rewrite(shared_datasets: Path, tunelab_home: Path) -> None:
    first = normalize_file(shared_datasets / "glaive_toolcall_en_demo.json")
    assert first.path == tunelab_home / "datasets" / first.version_id
    manifest = json.loads((first.path / "manifest.json").read_text())
    assert manifest["source_name"] == "glaive_toolcall_en_demo.json"
    assert manifest["format"] == "sharegpt" and manifest["counts"] == {"records": 300, "chat": 300}
    assert len(manifest["source_sha256"]) == 64 and manifest["created"]
    before = (first.path / "records.jsonl").stat().st_mtime_ns
    second = normalize_file(shared_datasets / "glaive_toolcall_en_demo.json")
    assert second.version_id == first.version_id
    assert second.created == first.created
    assert (first.path / "records.jsonl").stat().st_mtime_ns == before
    loaded = load_version(first.version_id)
    records = list(loaded.iter_records())
    assert len(records) == 300 and records[0].messages[3].tool_calls[0].name == "search_recipes"
    assert [v.version_id for v in list_versions()] == [first.version_id]


def test_mapping_is_part_of_the_id(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n", encoding="utf-8")
    plain = normalize_file(path, home=tmp_path / "h")
    mapped = normalize_file(path, mapping=["question=input", "answer=output"], home=tmp_path / "h")
    assert plain.version_id != mapped.version_id
    assert mapped.mapping.columns == {"question": "input", "answer": "output"}
    assert load_version(mapped.version_id, home=tmp_path / "h").format == "input_output"


def test_normalise_stops_at_first_error_and_stores_nothing(tmp_path: Path, tunelab_home: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        normalize_file(path)
    assert caught.value.code == "bad_json" and caught.value.details["line"] == 2
    assert [p.name for p in (tunelab_home / "datasets").iterdir()] == []
    with pytest.raises(NotFound):
        load_version("ds-nope")


def _messy(path: Path) -> Path:
    rows = [
        b'{"instruction": "  Hello  ", "output": "Hi\\n"}',
        b'{"instruction": "", "input": "", "output": " "}',
        b'{"instruction": "caf\xe9?", "output": "oui"}',
        b'{"instruction": "Hello", "output": "Hi"}',
        b'{"instruction": "Other", "output": "Thing"}',
    ]
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


def test_repair_file_reports_every_change(tmp_path: Path) -> None:
    source = _messy(tmp_path / "messy.jsonl")
    original = source.read_bytes()
    report = repair_file(source, tmp_path / "fixed.jsonl")
    assert source.read_bytes() == original  # never touched
    assert report.rows_in == 5 and report.rows_out == 3
    assert report.encoding_fixed == [2]
    assert report.whitespace_stripped == [0]
    assert report.dropped_empty == [1]
    assert [(d.row, d.duplicate_of) for d in report.duplicates_removed] == [(3, 0)]
    lines = [json.loads(x) for x in (tmp_path / "fixed.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines[0]["messages"][0]["content"] == "Hello"
    assert lines[1]["messages"][0]["content"] == "café?"
    assert "empty rows dropped: 1" in report.summary()
    again = repair_file(tmp_path / "fixed.jsonl", tmp_path / "again.jsonl")
    assert not again.changed and again.summary() == ["no changes needed"]


def test_repair_refuses_other_errors_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{oops\n{"text": "b"}\n', encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        repair_file(path, tmp_path / "out.jsonl")
    assert caught.value.code == "bad_json"
    report = repair_file(path, tmp_path / "out.jsonl", drop_invalid=True)
    assert [(i.code, i.line) for i in report.dropped_invalid] == [("bad_json", 2)]
    assert report.rows_out == 2
    with pytest.raises(DatasetError):
        repair_file(path, path)


def test_repair_version_makes_a_child_version(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": " a "}\n{"text": "b"}\n{"text": "b"}\n', encoding="utf-8")
    parent = normalize_file(path)
    child, report = repair_version(parent.version_id)
    assert child.version_id != parent.version_id and child.parent == parent.version_id
    assert [r.text for r in child.iter_records()] == ["a", "b"]
    assert report.whitespace_stripped == [0] and report.duplicates_removed[0].row == 2
    assert load_version(child.version_id).changes["duplicates_removed"] == [{"row": 2, "duplicate_of": 1}]
    assert [r.text for r in parent.iter_records()] == [" a ", "b", "b"]


def test_repair_fixes_cp1252_csv(tmp_path: Path) -> None:
    path = tmp_path / "win.csv"
    path.write_bytes(b"input,output\nq,a\n\x93Quoted\x94 caf\xe9,ok\n")
    with pytest.raises(DatasetError):
        list(iter_records(path))
    report = repair_file(path, tmp_path / "fixed.jsonl")
    assert report.encoding_fixed == [1]
    second = json.loads((tmp_path / "fixed.jsonl").read_text(encoding="utf-8").splitlines()[1])
    assert second["messages"][0]["content"] == "\u201cQuoted\u201d café"
