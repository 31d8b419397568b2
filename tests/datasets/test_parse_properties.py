"""Property tests of dataset parsing: whatever the bytes, a structured answer, never a crash or a hang.

``inspect_file`` must always return a report (records or issues with a code,
message and hint); ``iter_records`` must yield records or raise
``DatasetError``, nothing else. Inputs are random bytes, random JSON values and
documents, huge fields, deep nesting and mixed encodings, under every file
suffix the readers take. Sizes are bounded and each example has a deadline, so
a hang fails the test instead of stalling it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunelab.datasets import CODES, inspect_file, iter_records
from tunelab.errors import DatasetError

SUFFIXES = [".jsonl", ".json", ".csv", ".tsv", ".txt"]
PROPERTY = settings(max_examples=60, deadline=timedelta(seconds=5), derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
roles = st.sampled_from(["user", "assistant", "system", "tool", "bot", "", "USER"])
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": st.text(max_size=60) | st.none() | json_values}), max_size=5
)
records = st.one_of(
    st.fixed_dictionaries({"messages": messages}),
    st.fixed_dictionaries({"instruction": st.text(max_size=60), "output": st.text(max_size=60)}),
    st.fixed_dictionaries({"prompt": json_values, "completion": json_values}),
    st.dictionaries(st.text(max_size=12), json_values, max_size=5),
    json_values,
)


def check_parse(path: Path) -> None:
    """The two entry points answer in their structured ways only."""
    report = inspect_file(path)
    for found in report.issues:
        assert found.code in CODES, found
        assert found.message
    try:
        for _record in iter_records(path):
            pass
    except DatasetError as error:
        assert error.code and error.message


def write(tmp_path: Path, suffix: str, data: bytes) -> Path:
    path = tmp_path / f"data{suffix}"
    path.write_bytes(data)
    return path


@PROPERTY
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    check_parse(write(tmp_path, suffix, data))


@PROPERTY
@given(rows=st.lists(records, max_size=8), as_array=st.booleans())
def test_random_json_records(tmp_path: Path, rows: list[object], as_array: bool) -> None:
    if as_array:
        check_parse(write(tmp_path, ".json", json.dumps(rows).encode()))
    else:
        check_parse(write(tmp_path, ".jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode()))


@PROPERTY
@given(value=json_values, suffix=st.sampled_from([".json", ".jsonl"]))
def test_any_json_document(tmp_path: Path, value: object, suffix: str) -> None:
    check_parse(write(tmp_path, suffix, json.dumps(value).encode()))


@PROPERTY
@given(depth=st.integers(min_value=1, max_value=20_000), opener=st.sampled_from(["[", '{"a":']),
       suffix=st.sampled_from([".json", ".jsonl"]), closed=st.booleans())  # fmt: skip
def test_deep_nesting(tmp_path: Path, depth: int, opener: str, suffix: str, closed: bool) -> None:
    closer = "]" if opener == "[" else "}"
    inner = opener * depth + "1" + (closer * depth if closed else "")
    body = f'[{{"messages": {inner}}}]' if suffix == ".json" else f'{{"messages": {inner}}}\n'
    check_parse(write(tmp_path, suffix, body.encode()))


def test_ten_thousand_nested_brackets_is_a_structured_issue(tmp_path: Path) -> None:
    """The case the hostile-input probe found: a ``.json`` upload of 10,000 nested brackets."""
    path = write(tmp_path, ".json", b"[" * 10_000 + b"]" * 10_000)
    report = inspect_file(path)
    assert not report.ok
    assert report.issues[0].code == "bad_json"
    with pytest.raises(DatasetError):
        list(iter_records(path))


@settings(PROPERTY, max_examples=8)
@given(size=st.integers(min_value=100_000, max_value=2_000_000), field=st.sampled_from(["content", "role", "x" * 500]),
       suffix=st.sampled_from([".jsonl", ".json", ".csv"]))  # fmt: skip
def test_huge_fields(tmp_path: Path, size: int, field: str, suffix: str) -> None:
    big = "a" * size
    row = {"messages": [{"role": "user", field: big}, {"role": "assistant", "content": "ok"}]}
    if suffix == ".csv":
        data = f"instruction,output\n{big},ok\n".encode()
    elif suffix == ".json":
        data = json.dumps([row]).encode()
    else:
        data = (json.dumps(row) + "\n").encode()
    check_parse(write(tmp_path, suffix, data))


texts = st.text(max_size=80)
encodings = st.sampled_from(["utf-8", "utf-16", "utf-16-le", "cp1252", "latin-1", "shift_jis", "utf-8-sig"])


@PROPERTY
@given(parts=st.lists(st.tuples(texts, encodings), min_size=1, max_size=6), suffix=st.sampled_from(SUFFIXES))
def test_mixed_encodings(tmp_path: Path, parts: list[tuple[str, str]], suffix: str) -> None:
    """Lines written each in its own encoding (what copy-pasting between tools produces)."""
    lines = []
    for text, encoding in parts:
        row = json.dumps({"instruction": text, "output": "ok"}, ensure_ascii=False)
        line = row if suffix in (".json", ".jsonl") else f"{text.replace(chr(10), ' ')},ok"
        lines.append(line.encode(encoding, errors="replace"))
    header = b"instruction,output\n" if suffix in (".csv", ".tsv") else b""
    body = b"\n".join(lines)
    data = header + (b"[" + b",\n".join(lines) + b"]" if suffix == ".json" else body)
    check_parse(write(tmp_path, suffix, data))
