"""Streaming readers for CSV, TSV, JSON, JSONL, TXT and Parquet files.

Each reader yields ``RawRow`` objects one at a time and never loads the whole
file: text formats are read line by line (JSON through ``JsonArrayReader``),
Parquet by record batches. A row that cannot be read (bad JSON on its line,
bytes that are not UTF-8) is yielded with ``problem`` set, so inspection can
report it and go on while ``iter_records`` stops at it.

Row numbers are 0-based record indexes; line numbers are 1-based lines of the
file. TXT files hold one text per non-empty line.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from tunelab.datasets.encoding import BOM, decode_utf8
from tunelab.datasets.issues import REPAIR_HINT, Issue, RowProblem, issue
from tunelab.datasets.jsonstream import MAX_DEPTH, JsonArrayReader
from tunelab.errors import DatasetError

FILE_TYPES = ("csv", "tsv", "json", "jsonl", "txt", "parquet")
#: File-name suffix -> file type: the one list of what a dataset file may be called. Readers
#: check it against the first bytes; uploads accept exactly these (``api/uploads.py``) and the
#: dashboard offers them (``GET /api/meta``).
SUFFIXES: dict[str, str] = {
    ".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".txt": "txt", ".text": "txt", ".parquet": "parquet", ".pq": "parquet",
}  # fmt: skip
_NON_UTF8_HINT = f"Save the file as UTF-8, {REPAIR_HINT} (decodes such bytes as cp1252)"


class RawRow(NamedTuple):
    """One row as read from the file: a dict, a string (TXT), or a problem."""

    row: int
    line: int | None
    value: Any
    problem: Issue | None = None
    fixed_encoding: bool = False


def _sniff_json(head: bytes, claimed: str | None) -> str:
    """``json`` for an array/object document, ``jsonl`` for one object per line."""
    text = head.lstrip()
    if text.startswith(b"["):
        return "json"
    if claimed == "jsonl":
        return "jsonl"
    first, _, rest = text.partition(b"\n")
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return "json"
    return "jsonl" if rest.lstrip().startswith(b"{") else "json"


def detect_file_type(path: Path) -> str:
    """The file type from the extension, checked against (and refined by) the first bytes."""
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    head = head.removeprefix(BOM.encode())
    claimed = SUFFIXES.get(path.suffix.lower())
    if head.startswith(b"PAR1"):
        if claimed not in (None, "parquet"):
            raise DatasetError(
                f"{path.name} is a Parquet file, not {claimed.upper()}",
                "Rename it with a .parquet extension",
                code="wrong_file_type",
            )
        return "parquet"
    if claimed == "parquet":
        raise DatasetError(
            f"{path.name} is not a Parquet file (no PAR1 header)",
            "Check the file; give text formats a .csv, .json, .jsonl or .txt extension",
            code="wrong_file_type",
        )
    if b"\x00" in head:
        raise DatasetError(
            f"{path.name} is a binary file, not a text dataset",
            "Use CSV, TSV, JSON, JSONL, TXT or Parquet (zip and spreadsheet files must be exported first)",
            code="wrong_file_type",
        )
    stripped = head.lstrip()
    if claimed in ("json", "jsonl") or (claimed is None and stripped[:1] in (b"[", b"{")):
        return _sniff_json(head, claimed)
    if claimed is not None:
        return claimed
    first_line = head.split(b"\n", 1)[0]
    return "tsv" if b"\t" in first_line else "csv" if b"," in first_line else "txt"


def _decoded_lines(handle: Any, start_line: int = 1) -> Iterator[tuple[int, str, bool]]:
    """``(line, text, had_bad_bytes)`` per line; bad bytes decoded as cp1252 and flagged.

    Decoding always falls back so a CSV's quoting survives a bad byte; readers
    turn flagged lines into ``non_utf8`` problems unless they are repairing.
    """
    for number, raw in enumerate(handle, start_line):
        decoded = decode_utf8(raw, fallback=True)
        text = decoded.text.removeprefix(BOM) if number == 1 else decoded.text
        yield number, text, bool(decoded.bad_offsets)


def _non_utf8(row: int, line: int) -> Issue:
    return issue("non_utf8", f"bytes that are not valid UTF-8 at line {line}", _NON_UTF8_HINT, row=row, line=line)


def nesting_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests lists and objects, counted up to ``limit + 1`` (no recursion)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _checked(row: int, line: int | None, value: Any, fixed: bool = False) -> RawRow:
    """The row, or a ``bad_json`` problem when it nests deeper than ``MAX_DEPTH``.

    Nothing downstream (normalising, storing, tokenising) has to meet a record
    that would exhaust its recursion.
    """
    if isinstance(value, dict | list) and nesting_depth(value) > MAX_DEPTH:
        where = f" on line {line}" if line is not None else ""
        problem = issue(
            "bad_json", f"record {row}{where} nests deeper than {MAX_DEPTH} levels",
            "A record nests a few levels (messages, turns, parts); flatten this one", row=row, line=line,
        )  # fmt: skip
        return RawRow(row, line, None, problem)
    return RawRow(row, line, value, None, fixed)


def read_jsonl(path: Path, fix: bool = False) -> Iterator[RawRow]:
    row = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if number == 1:
                raw = raw.removeprefix(BOM.encode())
            if not raw.strip():
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                decoded = decode_utf8(raw, fallback=fix)
                if decoded.bad_offsets and not fix:
                    yield RawRow(row, number, None, _non_utf8(row, number))
                else:
                    yield _jsonl_retry(row, number, decoded.text, bool(decoded.bad_offsets), exc)
            else:
                yield _checked(row, number, value)
            row += 1


def _jsonl_retry(row: int, line: int, text: str, fixed: bool, exc: Exception) -> RawRow:
    import json

    try:
        return _checked(row, line, json.loads(text), fixed)
    except json.JSONDecodeError as err:
        detail = f"{err.msg} at column {err.colno}"
    except RecursionError:
        detail = f"nested deeper than {MAX_DEPTH} levels"
    except ValueError:
        detail = str(exc)
    problem = issue(
        "bad_json",
        f"invalid JSON on line {line}: {detail}",
        "Each line of a JSONL file must be one complete JSON object; fix or remove this line",
        row=row,
        line=line,
    )
    return RawRow(row, line, None, problem)


_DELIMITERS = (",", ";", "\t", "|")


def sniff_delimiter(path: Path, default: str = ",") -> str:
    """The delimiter of a CSV's header line: comma unless ``;``, tab or ``|`` clearly separate it.

    Spreadsheets in many locales export semicolon-separated "CSV"; without this
    such a file reads as one column and fails format detection.
    """
    with path.open("rb") as handle:
        head = handle.readline(65536).decode("utf-8", errors="replace").lstrip("\ufeff")
    counts = {d: head.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > counts[default] else default


def read_delimited(path: Path, delimiter: str, fix: bool = False) -> Iterator[RawRow]:
    csv.field_size_limit(sys.maxsize)
    bad_lines: list[int] = []

    def lines() -> Iterator[str]:
        for number, text, bad in _decoded_lines(handle):
            if bad:
                bad_lines.append(number)
            yield text

    with path.open("rb") as handle:
        reader = csv.reader(lines(), delimiter=delimiter)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a lone carriage return inside the header line
            kind = "TSV" if delimiter == chr(9) else "CSV"
            message = f"cannot parse the header line as {kind}: {exc}"
            hint = "The first line must hold the column names, separated by the delimiter, on one line"
            yield RawRow(0, 1, None, issue("bad_value", message, hint, row=0, line=1))
            return
        yield from _delimited_rows(reader, header, bad_lines, delimiter, fix)


def _delimited_rows(
    reader: Any, header: list[str], bad_lines: list[int], delimiter: str, fix: bool
) -> Iterator[RawRow]:
    row, last_line = 0, reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = last_line + 1
            message = f"cannot parse line {line} as {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}"
            hint = "Check the quoting there (an unclosed quote swallows the lines after it)"
            yield RawRow(row, line, None, issue("bad_value", message, hint, row=row, line=line))
            return
        start, last_line = last_line + 1, reader.line_num
        broken = [n for n in bad_lines if n >= start]
        bad_lines.clear()
        if not fields:
            continue
        if broken and not fix:
            yield RawRow(row, broken[0], None, _non_utf8(row, broken[0]))
        elif len(fields) > len(header):
            message = f"row has {len(fields)} fields but the header has {len(header)}"
            hint = f"Quote values that contain the delimiter {delimiter!r}"
            yield RawRow(row, start, None, issue("bad_value", message, hint, row=row, line=start))
        else:
            yield RawRow(row, start, dict(zip(header, fields, strict=False)), None, bool(broken))
        row += 1


def read_txt(path: Path, fix: bool = False) -> Iterator[RawRow]:
    row = 0
    with path.open("rb") as handle:
        for number, text, bad in _decoded_lines(handle):
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            if bad and not fix:
                yield RawRow(row, number, None, _non_utf8(row, number))
            else:
                yield RawRow(row, number, text, None, bad)
            row += 1


def read_json(path: Path, fix: bool = False) -> Iterator[RawRow]:
    with path.open("rb") as handle:
        reader = JsonArrayReader(handle, fix_encoding=fix)
        row = 0
        try:
            for line, value in reader:
                fixed = bool(reader.fixed_lines)
                reader.fixed_lines.clear()
                yield _checked(row, line, value, fixed)
                row += 1
        except RowProblem as problem:
            yield RawRow(row, problem.line, None, problem.at(row, problem.line))  # type: ignore[attr-defined]


def read_parquet(path: Path, fix: bool = False) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DatasetError(
            f"{path.name} is not a readable Parquet file: {exc}",
            "Re-export the file with pyarrow or pandas (`df.to_parquet(...)`)",
            code="wrong_file_type",
        ) from None
    row = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for value in batch.to_pylist():
            yield RawRow(row, None, value)
            row += 1


def read_rows(path: Path, file_type: str, *, fix_encoding: bool = False) -> Iterator[RawRow]:
    """Stream the rows of ``path`` read as ``file_type`` (one of ``FILE_TYPES``)."""
    if file_type == "jsonl":
        return read_jsonl(path, fix_encoding)
    if file_type in ("csv", "tsv"):
        return read_delimited(path, sniff_delimiter(path) if file_type == "csv" else "\t", fix_encoding)
    if file_type == "txt":
        return read_txt(path, fix_encoding)
    if file_type == "json":
        return read_json(path, fix_encoding)
    if file_type == "parquet":
        return read_parquet(path, fix_encoding)
    raise DatasetError(
        f"unknown file type {file_type!r}", f"Use one of {', '.join(FILE_TYPES)}", code="wrong_file_type"
    )
