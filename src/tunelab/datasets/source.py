"""Opening a dataset file: checks, format detection, and the stream of converted rows.

Every entry point (inspect, iter_records, normalise, repair) goes through
``open_source``, so they agree on what a file contains: file-level problems
(unreadable, too large, wrong type, undetectable format) raise a
``DatasetError`` at once; row-level problems travel with their row.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.datasets.aliases import infer_mapping
from tunelab.datasets.formats import FORMATS, convert_row, detect_format
from tunelab.datasets.issues import Issue, RowProblem
from tunelab.datasets.mapping import Mapping, parse_mapping
from tunelab.datasets.readers import RawRow, detect_file_type, read_rows
from tunelab.datasets.records import Record
from tunelab.errors import DatasetError
from tunelab.settings import get_settings

DETECT_ROWS = 20
_DETECT_SCAN = 1000


@dataclass
class Row:
    """One row after conversion: a record, or the problem that prevented it."""

    row: int
    line: int | None
    record: Record | None
    problem: Issue | None = None
    fixed_encoding: bool = False


@dataclass
class Source:
    """An opened dataset file and the stream of its rows."""

    path: Path
    file_type: str
    format: str | None
    mapping: Mapping
    size: int
    rows: Iterator[Row]


def check_file(path: str | Path, max_bytes: int | None = None) -> tuple[Path, int]:
    """The path and size, or a ``file_unreadable``/``file_too_large`` error."""
    path = Path(path)
    try:
        stat = path.stat()
        if not path.is_file():
            raise IsADirectoryError(str(path))
        with path.open("rb"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DatasetError(
            f"cannot read {path}: {reason}",
            "Check the path and the file's permissions",
            code="file_unreadable",
        ) from None
    limit = max_bytes if max_bytes is not None else get_settings().max_upload_bytes
    if stat.st_size > limit:
        raise DatasetError(
            f"{path.name} is {stat.st_size:,} bytes, over the limit of {limit:,} bytes",
            "Split the file, or raise the limit with TUNELAB_MAX_UPLOAD_BYTES (or max_bytes=)",
            code="file_too_large",
        )
    return path, stat.st_size


def _columns(values: list[Any]) -> str:
    names: dict[str, None] = {}
    for value in values:
        if isinstance(value, dict):
            names.update(dict.fromkeys(value))
    return ", ".join(names) or "none"


def _detect(raws: list[RawRow], mapping: Mapping) -> tuple[str | None, Mapping]:
    """The format of the rows, and the mapping extended with any recognised column aliases."""
    values = [r.value for r in raws if r.problem is None]
    mapped = [mapping.apply_columns(v) if isinstance(v, dict) else v for v in values][:DETECT_ROWS]
    fmt = detect_format(mapped)
    if fmt is None and mapped:
        inferred = infer_mapping(mapped, mapping)
        if inferred is not None:
            return inferred
        raise DatasetError(
            f"could not detect the dataset format from columns: {_columns(mapped)}",
            "Name a format with --format (alpaca, sharegpt, openai, prompt_completion, "
            "question_answer, input_output, text, preference) and map columns with --map COLUMN=FIELD",
            code="unknown_format",
        )
    return fmt, mapping


def _convert(raws: Iterable[RawRow], source: Source) -> Iterator[Row]:
    fmt, mapping = source.format, source.mapping
    for raw in raws:
        if raw.problem is not None:
            yield Row(raw.row, raw.line, None, raw.problem, raw.fixed_encoding)
            continue
        if fmt is None:  # every row read for detection had a problem: detect on this one
            fmt, mapping = _detect([raw], mapping)
            source.format, source.mapping = fmt, mapping
        try:
            record = convert_row(fmt, raw.value, mapping)
        except RowProblem as problem:
            yield Row(raw.row, raw.line, None, problem.at(raw.row, raw.line), raw.fixed_encoding)
        else:
            yield Row(raw.row, raw.line, record, None, raw.fixed_encoding)


def open_source(
    path: str | Path,
    *,
    format: str | None = None,
    mapping: Mapping | dict[str, str] | Iterable[str] | None = None,
    max_bytes: int | None = None,
    fix_encoding: bool = False,
) -> Source:
    """Check the file, detect its type and format, and stream its converted rows."""
    path, size = check_file(path, max_bytes)
    mapping = parse_mapping(mapping)
    if format is not None and format not in FORMATS:
        raise DatasetError(
            f"unknown format {format!r}", f"Use one of {', '.join(FORMATS)}", code="unknown_format"
        )
    file_type = detect_file_type(path)
    raws = read_rows(path, file_type, fix_encoding=fix_encoding)
    head: list[RawRow] = []
    if format is None:
        for raw in raws:
            head.append(raw)
            good = sum(1 for r in head if r.problem is None)
            if good >= DETECT_ROWS or len(head) >= _DETECT_SCAN:
                break
        format, mapping = _detect(head, mapping)
    source = Source(path, file_type, format, mapping, size, iter(()))
    source.rows = _convert(itertools.chain(head, raws), source)
    return source


def iter_records(
    path: str | Path,
    *,
    format: str | None = None,
    mapping: Mapping | dict[str, str] | Iterable[str] | None = None,
) -> Iterator[Record]:
    """Stream the canonical records of a file; raise ``DatasetError`` at the first error.

    The error carries the row and line (in ``details``), a code and a hint.
    """
    source = open_source(path, format=format, mapping=mapping)
    for row in source.rows:
        if row.problem is not None:
            raise row.problem.to_error()
        if row.record is not None:
            yield row.record
