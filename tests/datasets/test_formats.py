"""Each supported file type and dataset format, from small files written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.datasets import inspect_file, iter_records, jsonstream
from tunelab.datasets.readers import read_rows


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_csv_input_output(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(
        'input,output\nWhat is 2+2?,4\n"Say ""hi"", please","hi,\nthere"\nCapital of France?,Paris\n',
        encoding="utf-8",
    )
    report = inspect_file(path)
    assert (report.file_type, report.format, report.errors) == ("csv", "input_output", 0)
    records = list(iter_records(path))
    assert [(m.role, m.content) for m in records[0].messages] == [("user", "What is 2+2?"), ("assistant", "4")]
    assert records[1].messages[0].content == 'Say "hi", please'
    assert records[1].messages[1].content == "hi,\nthere"  # quoted newline inside a field
    assert records[2].messages[1].content == "Paris"


def test_tsv_question_answer_with_system(tmp_path: Path) -> None:
    path = tmp_path / "qa.tsv"
    path.write_text("system\tquestion\tanswer\nBe brief.\tWhy?\tBecause.\n", encoding="utf-8")
    (record,) = iter_records(path)
    assert [(m.role, m.content) for m in record.messages] == [
        ("system", "Be brief."), ("user", "Why?"), ("assistant", "Because.")]  # fmt: skip


def test_parquet_prompt_completion(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "pc.parquet"
    table = pa.table({"prompt": [f"p{i}" for i in range(2500)], "completion": [f"c{i}" for i in range(2500)]})
    pq.write_table(table, path, row_group_size=1000)
    records = list(iter_records(path))
    assert len(records) == 2500
    assert records[2499].messages[0].content == "p2499"
    assert inspect_file(path).format == "prompt_completion"


def test_txt_one_text_per_non_empty_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("First document.\n\n   \nSecond document.\r\n", encoding="utf-8")
    records = list(iter_records(path))
    assert [r.text for r in records] == ["First document.", "Second document."]
    assert inspect_file(path).format == "text"


def test_openai_messages_with_tool_calls_and_weight(tmp_path: Path) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
    row = {"messages": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "add "}, {"type": "text", "text": "1"}]},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": "2", "name": "add"},
        {"role": "assistant", "content": "It is 2.", "weight": 0},
    ], "tools": [{"name": "add"}]}  # fmt: skip
    path = _jsonl(tmp_path / "chat.jsonl", [row])
    (record,) = iter_records(path)
    assert inspect_file(path).format == "openai"
    assert record.messages[1].content == "add 1"
    assert record.messages[2].tool_calls[0].name == "add"
    assert record.messages[2].tool_calls[0].arguments == '{"a": 1}'
    assert record.messages[3].name == "add"
    assert record.messages[4].weight == 0
    assert json.loads(record.tools) == [{"name": "add"}]


def test_column_and_role_mapping(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [{"prompt": "Hi", "answer": "Hello"}])
    (record,) = iter_records(path, mapping=["prompt=instruction", "answer=output"])
    assert inspect_file(path, mapping={"prompt": "instruction", "answer": "output"}).format == "alpaca"
    assert [m.content for m in record.messages] == ["Hi", "Hello"]
    chat = _jsonl(tmp_path / "c.jsonl", [{"dialog": [{"speaker": "me", "text": "Hi"},
                                                     {"speaker": "bot", "text": "Yo"}]}])  # fmt: skip
    rules = ["dialog=conversations", "key:speaker=from", "key:text=value", "role:me=user", "role:bot=assistant"]
    report = inspect_file(chat, mapping=rules)
    assert (report.format, report.errors) == ("sharegpt", 0)
    assert sorted(report.mapping.rules()) == sorted(rules)
    (record,) = iter_records(chat, mapping=rules)
    assert [(m.role, m.content) for m in record.messages] == [("user", "Hi"), ("assistant", "Yo")]


def test_explicit_format_and_bad_mapping(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "x.jsonl", [{"text": "t", "output": "o", "input": "i"}])
    assert next(iter_records(path)).kind == "chat"  # input/output wins over text in detection
    assert next(iter_records(path, format="text")).text == "t"
    from tunelab.errors import DatasetError

    with pytest.raises(DatasetError) as caught:
        inspect_file(path, mapping=["noequals"])
    assert caught.value.code == "bad_mapping"


def test_preference_variants(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Q?", "chosen": "good", "rejected": "bad"},
        {"messages": [{"role": "user", "content": "Q2"}],
         "chosen": [{"role": "assistant", "content": "A"}], "rejected": {"role": "assistant", "content": "B"}},
    ]  # fmt: skip
    first, second = iter_records(_jsonl(tmp_path / "p.jsonl", rows))
    assert (first.messages[0].content, first.chosen[0].content, first.rejected[0].role) == ("Q?", "good", "assistant")
    assert (second.messages[0].content, second.chosen[0].content, second.rejected[0].content) == ("Q2", "A", "B")


def test_json_object_holding_one_list(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"version": 1, "data": [{"text": "a"}, {"text": "b"}]}), encoding="utf-8")
    assert [r.text for r in iter_records(path)] == ["a", "b"]


def test_json_stream_across_chunk_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonstream, "_CHUNK", 7)  # split elements, numbers and multi-byte chars
    rows = [{"text": f"héllo wörld ✓ {i}", "n": 12345678 + i} for i in range(50)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    raws = list(read_rows(path, "json"))
    assert [r.value for r in raws] == rows
    assert raws[0].line == 2 and raws[1].line == 6  # each element's first line (indent=2: 4 lines each)


def test_jsonl_named_json_is_sniffed(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "lines.json", [{"text": "a"}, {"text": "b"}])
    report = inspect_file(path)
    assert (report.file_type, report.quality.rows) == ("jsonl", 2)


def test_json_single_record_object(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    row = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
    path.write_text(json.dumps(row, indent=1), encoding="utf-8")
    (record,) = iter_records(path)
    assert [m.content for m in record.messages] == ["hi", "yo"]


def test_byte_order_marks_and_crlf(tmp_path: Path) -> None:
    bom = "\ufeff"
    (tmp_path / "a.json").write_text(bom + '[{"text": "x"}]', encoding="utf-8")
    (tmp_path / "b.csv").write_text(bom + "input,output\r\nq,a\r\n", encoding="utf-8")
    (tmp_path / "c.jsonl").write_text(bom + '{"text": "y"}\r\n', encoding="utf-8")
    assert next(iter_records(tmp_path / "a.json")).text == "x"
    assert [m.content for m in next(iter_records(tmp_path / "b.csv")).messages] == ["q", "a"]
    assert next(iter_records(tmp_path / "c.jsonl")).text == "y"


def test_parquet_nested_sharegpt(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    conv = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]
    pq.write_table(pa.Table.from_pylist([{"conversations": conv, "system": "be nice"}]), tmp_path / "s.parquet")
    (record,) = iter_records(tmp_path / "s.parquet")
    assert [(m.role, m.content) for m in record.messages] == [
        ("system", "be nice"), ("user", "hi"), ("assistant", "yo")]  # fmt: skip


def test_semicolon_and_pipe_separated_csv(tmp_path: Path) -> None:
    for delimiter in (";", "|"):
        path = tmp_path / "export.csv"
        path.write_text(f"question{delimiter}answer\nWhy, really?{delimiter}Because.\n", encoding="utf-8")
        (record,) = iter_records(path)
        assert [(m.role, m.content) for m in record.messages] == [("user", "Why, really?"), ("assistant", "Because.")]


def test_csv_with_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfinstruction,output\r\nSay hi,hi\r\n")
    report = inspect_file(path)
    assert (report.format, report.errors) == ("alpaca", 0)
    (record,) = iter_records(path)
    assert [m.content for m in record.messages] == ["Say hi", "hi"]


def test_undetectable_format_still_reports_size_and_file_type(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("foo,bar\n1,2\n", encoding="utf-8")
    report = inspect_file(path)
    assert (report.file_type, report.size_bytes, report.format) == ("csv", 12, None)
    assert [i.code for i in report.issues] == ["unknown_format"]


def test_csv_cells_holding_json_conversations(tmp_path: Path) -> None:
    import csv

    path = tmp_path / "chats.csv"
    messages = [{"role": "user", "content": "Hi, you"}, {"role": "assistant", "content": "Hello!"}]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["messages"])
        writer.writerow([json.dumps(messages)])
    report = inspect_file(path)
    assert (report.format, report.errors) == ("openai", 0)
    (record,) = iter_records(path)
    assert [(m.role, m.content) for m in record.messages] == [("user", "Hi, you"), ("assistant", "Hello!")]

    pairs = tmp_path / "pairs.csv"
    with pairs.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "chosen", "rejected"])
        writer.writerow(["Pick one", json.dumps([{"role": "assistant", "content": "A"}]), "[not json"])
    (pair,) = iter_records(pairs)
    assert [m.content for m in pair.chosen] == ["A"] and [m.content for m in pair.rejected] == ["[not json"]
