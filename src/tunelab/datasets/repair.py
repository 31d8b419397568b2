"""Repair: a new, cleaned copy of a dataset and an exact account of the changes.

Repair only makes mechanical fixes that cannot change what a row means: it
decodes non-UTF-8 bytes as cp1252, strips surrounding whitespace from texts,
drops rows with no text at all and removes exact duplicates (after
stripping). Rows with other errors stop the repair unless ``drop_invalid`` is
set, in which case each is listed with its issue. The original file or
version is never touched: the output is a new JSONL file of canonical records
or a new stored version whose manifest names its parent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tunelab.datasets.issues import Issue
from tunelab.datasets.mapping import Mapping, parse_mapping
from tunelab.datasets.quality import record_key
from tunelab.datasets.records import Message, Record
from tunelab.datasets.source import Row, open_source
from tunelab.datasets.versions import DatasetVersion, load_version, store_records
from tunelab.errors import DatasetError


class Duplicate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    row: int = Field(..., ge=0, description="Row removed.")
    duplicate_of: int = Field(..., ge=0, description="Earlier row it repeats (kept).")


class RepairReport(BaseModel):
    """What a repair changed, row by row, and why."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(..., description="File or version repaired (left untouched).")
    output: str | None = Field(None, description="File written, for file repairs.")
    version_id: str | None = Field(None, description="New version, for version repairs.")
    format: str | None = Field(None, description="Format the source was read as.")
    rows_in: int = Field(0, ge=0, description="Rows read.")
    rows_out: int = Field(0, ge=0, description="Records written.")
    encoding_fixed: list[int] = Field(default_factory=list, description="Rows whose non-UTF-8 bytes were decoded as cp1252.")
    whitespace_stripped: list[int] = Field(default_factory=list, description="Rows whose texts had surrounding whitespace removed.")
    dropped_empty: list[int] = Field(default_factory=list, description="Rows dropped because they held no text.")
    duplicates_removed: list[Duplicate] = Field(default_factory=list, description="Rows dropped as exact duplicates.")
    dropped_invalid: list[Issue] = Field(default_factory=list, description="Rows dropped for other errors (drop_invalid).")

    @property
    def changed(self) -> bool:
        return bool(self.encoding_fixed or self.whitespace_stripped or self.dropped_empty
                    or self.duplicates_removed or self.dropped_invalid)  # fmt: skip

    def summary(self) -> list[str]:
        """One line per kind of change, with the reason."""
        lines = []
        if self.encoding_fixed:
            lines.append(f"encoding fixed (non-UTF-8 bytes decoded as cp1252) in rows {_rows(self.encoding_fixed)}")
        if self.whitespace_stripped:
            lines.append(f"surrounding whitespace stripped in rows {_rows(self.whitespace_stripped)}")
        if self.dropped_empty:
            lines.append(f"empty rows dropped: {_rows(self.dropped_empty)}")
        for dup in self.duplicates_removed[:50]:
            lines.append(f"row {dup.row} dropped: exact duplicate of row {dup.duplicate_of}")
        if len(self.duplicates_removed) > 50:
            lines.append(f"... and {len(self.duplicates_removed) - 50} more duplicates")
        for problem in self.dropped_invalid[:50]:
            lines.append(f"row {problem.row} dropped: [{problem.code}] {problem.message}")
        return lines or ["no changes needed"]


def _rows(rows: list[int], limit: int = 30) -> str:
    shown = ", ".join(map(str, rows[:limit]))
    return shown + (f" ... ({len(rows)} in all)" if len(rows) > limit else "")


def _strip_messages(messages: list[Message] | None) -> tuple[list[Message] | None, bool]:
    if messages is None:
        return None, False
    stripped = [m.model_copy(update={"content": m.content.strip()}) for m in messages]
    return stripped, any(a.content != b.content for a, b in zip(stripped, messages, strict=True))


def strip_record(record: Record) -> tuple[Record, bool]:
    """The record with surrounding whitespace removed from every text, and whether it changed."""
    update: dict[str, object] = {}
    changed = False
    if record.text is not None:
        update["text"] = record.text.strip()
        changed = update["text"] != record.text
    for field in ("messages", "chosen", "rejected"):
        update[field], field_changed = _strip_messages(getattr(record, field))
        changed = changed or field_changed
    return (record.model_copy(update=update), True) if changed else (record, False)


def repaired(rows: Iterable[Row], report: RepairReport, *, drop_invalid: bool, fatal_codes: tuple[str, ...] = ()) -> Iterator[Record]:
    """Apply the repairs to a stream of rows, filling ``report`` as it goes."""
    seen: dict[int, int] = {}
    for row in rows:
        report.rows_in += 1
        if row.fixed_encoding:
            report.encoding_fixed.append(row.row)
        if row.problem is not None:
            if row.problem.code == "empty_row":
                report.dropped_empty.append(row.row)
                continue
            if not drop_invalid or row.problem.code in fatal_codes:
                raise row.problem.to_error()
            report.dropped_invalid.append(row.problem)
            continue
        assert row.record is not None
        record, changed = strip_record(row.record)
        if changed:
            report.whitespace_stripped.append(row.row)
        key = record_key(record.model_dump_json(exclude_none=True))
        if key in seen:
            report.duplicates_removed.append(Duplicate(row=row.row, duplicate_of=seen[key]))
            continue
        seen[key] = row.row
        report.rows_out += 1
        yield record


def repair_file(
    path: str | Path,
    out_path: str | Path,
    *,
    format: str | None = None,
    mapping: Mapping | dict[str, str] | Iterable[str] | None = None,
    drop_invalid: bool = False,
) -> RepairReport:
    """Write a repaired copy of ``path`` to ``out_path`` as JSONL of canonical records."""
    source = open_source(path, format=format, mapping=parse_mapping(mapping), fix_encoding=True)
    out_path = Path(out_path)
    if out_path.resolve() == source.path.resolve():
        raise DatasetError("the output would overwrite the original", "Choose another output path with -o",
                           code="invalid_input")  # fmt: skip
    report = RepairReport(source=str(source.path), output=str(out_path), format=source.format)
    fatal = ("bad_json",) if source.file_type == "json" else ()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as out:
            for record in repaired(source.rows, report, drop_invalid=drop_invalid, fatal_codes=fatal):
                out.write(record.model_dump_json(exclude_none=True) + "\n")
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return report


def repair_version(
    version_id: str, *, home: str | Path | None = None
) -> tuple[DatasetVersion, RepairReport]:
    """Repair a stored version into a new version whose manifest holds the report."""
    parent = load_version(version_id, home)
    report = RepairReport(source=version_id, format=parent.format)
    rows = (Row(i, i + 1, record) for i, record in enumerate(parent.iter_records()))
    version = store_records(
        repaired(rows, report, drop_invalid=False), mapping=parent.mapping, home=home,
        late=lambda: {"changes": report.model_dump(mode="json")}, source_name=parent.source_name,
        source_sha256=parent.source_sha256, source_bytes=parent.source_bytes, format=parent.format,
        parent=parent.version_id,
    )  # fmt: skip
    report.version_id = version.version_id
    return version, report
