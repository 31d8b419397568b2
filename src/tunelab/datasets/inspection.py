"""``inspect_file``: validation, quality report and preview in one streaming pass.

Inspection never raises for a bad dataset: every problem, file-level or
row-level, becomes an ``Issue`` in the report, so the CLI, the API and the
dashboard can show all of them at once before anything is stored or trained.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunelab.datasets.issues import REPAIR_HINT, Issue, IssueLog, issue
from tunelab.datasets.mapping import Mapping, parse_mapping
from tunelab.datasets.quality import QualityAccumulator, QualityReport, empty_turns
from tunelab.datasets.readers import detect_file_type
from tunelab.datasets.source import Source, open_source
from tunelab.datasets.tokens import ApproxCounter, TokenCounter
from tunelab.errors import DatasetError

MIN_ROWS = 100


class PreviewRow(BaseModel):
    """One of the first records, rendered as the model will see it."""

    model_config = ConfigDict(extra="forbid")

    row: int = Field(..., ge=0, description="0-based record index.")
    line: int | None = Field(None, ge=1, description="1-based line in the file, when known.")
    kind: str = Field(..., description="chat, text or preference.")
    tokens: int = Field(0, ge=0, description="Token length (see the report's tokenizer).")
    rendered: str = Field(..., description="The record as the model sees it.")
    record: dict[str, Any] = Field(..., description="The canonical record.")


class InspectionReport(BaseModel):
    """Everything known about a file before it is stored or trained on."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., description="The inspected file.")
    size_bytes: int = Field(0, ge=0, description="File size.")
    file_type: str | None = Field(None, description="csv, tsv, json, jsonl, txt or parquet.")
    format: str | None = Field(None, description="Detected or given dataset format.")
    mapping: Mapping = Field(default_factory=Mapping, description="Column and role mapping applied.")
    issues: list[Issue] = Field(default_factory=list, description="Issues, at most 20 per code.")
    issue_counts: dict[str, int] = Field(default_factory=dict, description="All issues per code.")
    errors: int = Field(0, ge=0, description="Number of errors (they block normalisation).")
    warnings: int = Field(0, ge=0, description="Number of warnings.")
    quality: QualityReport | None = Field(None, description="Quality report over the valid rows.")
    preview: list[PreviewRow] = Field(default_factory=list, description="First records, rendered.")

    @property
    def ok(self) -> bool:
        return self.errors == 0


def _scan(
    source: Source, counter: TokenCounter, log: IssueLog, max_length: int, preview_rows: int
) -> tuple[QualityAccumulator, list[PreviewRow]]:
    quality = QualityAccumulator(counter, max_length)
    preview: list[PreviewRow] = []
    for row in source.rows:
        if row.record is None:
            if row.problem is not None:
                log.add(row.problem)
                quality.add_problem(row.problem.code)
            continue
        record = row.record
        length = quality.add_record(record, record.model_dump_json(exclude_none=True))
        for found in empty_turns(record, row=row.row, line=row.line):
            log.add(found)
        if len(preview) < preview_rows:
            preview.append(PreviewRow(row=row.row, line=row.line, kind=record.kind, tokens=length,
                                      rendered=counter.render(record), record=record.to_json_dict()))  # fmt: skip
        if length > max_length:
            log.add(issue("over_max_length", f"{length} tokens, over max_length {max_length}",
                          "Raise max_length, or expect this row to be truncated in training",
                          row=row.row, line=row.line))  # fmt: skip
    return quality, preview


def _dataset_warnings(quality: QualityReport, log: IssueLog) -> None:
    if quality.duplicates:
        dups = quality.duplicates
        what = "row is an exact duplicate" if dups == 1 else "rows are exact duplicates"
        log.add(issue("duplicate_rows", f"{dups} {what} of earlier rows",
                      f"Duplicates over-weight those examples; remove them {REPAIR_HINT}"))  # fmt: skip
    if quality.rows == 0:
        log.add(issue("no_rows", "the file holds no rows", "Check that the right file was given"))
    elif quality.valid_rows < MIN_ROWS:
        log.add(issue("too_few_rows", f"only {quality.valid_rows} usable rows (fewer than {MIN_ROWS})",
                      "Fine-tuning on so few examples tends to overfit; add more examples if you can"))  # fmt: skip


def _describe_file(report: InspectionReport, path: Path) -> None:
    """Size and file type for the report even when the format could not be detected."""
    with contextlib.suppress(OSError, DatasetError):
        report.size_bytes = path.stat().st_size
        report.file_type = detect_file_type(path)


def inspect_file(
    path: str | Path,
    *,
    format: str | None = None,
    mapping: Mapping | dict[str, str] | Iterable[str] | None = None,
    counter: TokenCounter | None = None,
    max_length: int = 2048,
    preview_rows: int = 5,
    max_bytes: int | None = None,
) -> InspectionReport:
    """Validate ``path`` and report its quality; every problem is an issue in the report.

    ``counter`` counts and renders each record: the engine's exact counter
    (``tunelab.training.token_report.make_counter(tokenizer)``, which this part
    cannot import because it sits below the engine), or None for the labelled
    regex approximation.
    """
    counter = counter or ApproxCounter()
    parsed = parse_mapping(mapping)
    log = IssueLog()
    report = InspectionReport(path=str(path), format=format, mapping=parsed)
    try:
        source = open_source(path, format=format, mapping=parsed, max_bytes=max_bytes)
        report.size_bytes, report.file_type, report.format = source.size, source.file_type, source.format
        quality, preview = _scan(source, counter, log, max_length, preview_rows)
        report.format, report.mapping = source.format, source.mapping
    except DatasetError as error:
        _describe_file(report, Path(path))
        log.add(Issue(severity="error", code=error.code, message=error.message, hint=error.hint,
                      row=error.details.get("row"), line=error.details.get("line")))  # fmt: skip
    else:
        report.quality = quality.report()
        report.preview = preview
        _dataset_warnings(report.quality, log)
    report.issues = log.issues
    report.issue_counts = log.counts
    report.errors = log.error_count
    report.warnings = sum(log.counts.values()) - log.error_count
    return report


# -- the guide's table preview (POST /api/preview-csv) --------------------------------------

PREVIEW_DATA_ROWS = 10
_MAX_COLUMNS = 200
_MAX_CELL_CHARS = 2000
_DEFAULT_COLUMNS = ("input", "output")  # the guide's two columns, named when no format is recognised


class PreviewStatistics(BaseModel):
    """The guide's three numbers about a file."""

    model_config = ConfigDict(extra="forbid")

    total_rows: int = Field(0, ge=0, description="Rows read from the file (rows that failed count too).")
    total_columns: int = Field(0, ge=0, description="Number of entries in `columns`.")
    has_required_columns: bool = Field(
        False, description="Whether the columns are those of a format tunelab trains on (e.g. `input` and `output`)."
    )


class TablePreview(BaseModel):
    """A file seen as a table before it is stored: the guide's preview plus tunelab's own report."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(..., description="The client's file name (a label; never a server path).")
    columns: list[str] = Field(
        default_factory=list,
        description="The source's columns: a CSV/TSV header, the keys of JSON/JSONL/Parquet rows, `text` for TXT.",
    )
    data: list[dict[str, Any]] = Field(
        default_factory=list,
        description=f"The first rows as read, one object per row (cells over {_MAX_CELL_CHARS} "
        "characters are cut).",
    )
    validation_errors: list[str] = Field(
        default_factory=list, description="What stops the file from training, as sentences (empty when usable)."
    )
    statistics: PreviewStatistics = Field(default_factory=PreviewStatistics, description="Row and column counts.")
    file_type: str | None = Field(None, description="csv, tsv, json, jsonl, txt or parquet.")
    format: str | None = Field(None, description="The dataset format tunelab detected, if any.")
    ok: bool = Field(False, description="No errors: the file can be stored and trained on as is.")
    issues: list[Issue] = Field(default_factory=list, description="tunelab's structured issues (code, row, line, hint).")
    issue_counts: dict[str, int] = Field(default_factory=dict, description="All issues per code.")
    quality: QualityReport | None = Field(None, description="Quality report over the valid rows.")


def size_limit_sentence(limit: int) -> str:
    """The guide's sentence for a file over ``limit`` bytes: ``File exceeds 50MB limit``."""
    megabytes = limit / 1024**2
    return f"File exceeds {megabytes:g}MB limit" if megabytes >= 1 else f"File exceeds {limit:,} bytes limit"


def _cell(value: Any) -> Any:
    """A JSON-ready copy of a source value, long text cut (Parquet cells may be bytes, dates, decimals)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= _MAX_CELL_CHARS else value[:_MAX_CELL_CHARS] + "…"
    if isinstance(value, dict):
        return {str(k): _cell(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cell(v) for v in value]
    if isinstance(value, bytes):
        return _cell(value.decode("utf-8", "replace"))
    return _cell(str(value))


def _scan_table(path: Path, file_type: str, rows: int) -> tuple[list[str], list[dict[str, Any]], int]:
    """Columns (in first-seen order), the first ``rows`` rows as objects, and the row count."""
    from tunelab.datasets.readers import read_rows

    columns: dict[str, None] = {}
    data: list[dict[str, Any]] = []
    total = 0
    for raw in read_rows(path, file_type):
        total += 1
        value = raw.value
        if raw.problem is not None:
            continue
        if isinstance(value, str):  # TXT: one text per line
            value = {"text": value}
        elif not isinstance(value, dict):  # a JSON array of plain values
            value = {"value": value}
        if len(columns) < _MAX_COLUMNS:
            columns.update(dict.fromkeys(k for k in map(str, value) if k not in columns))
        if len(data) < rows:
            data.append({str(k): _cell(v) for k, v in value.items()})
    return list(columns)[:_MAX_COLUMNS], data, total


def _missing_columns(columns: list[str], mapping: Mapping) -> list[str]:
    """The required columns of the format these columns come closest to (the guide's input/output if none)."""
    from tunelab.datasets.formats import FORMATS

    have = set(columns) | {mapping.columns.get(c, c) for c in columns}
    best: tuple[int, list[str]] | None = None
    ordered = sorted(FORMATS.items(), key=lambda item: item[0] != "input_output")  # ties go to the guide's pair
    for _name, slots in ordered:
        found = sum(1 for slot in slots if any(c in have for c in slot))
        missing = [" or ".join(f"'{c}'" for c in slot) for slot in slots if not any(c in have for c in slot)]
        if found and missing and (best is None or found > best[0]):
            best = (found, missing)
    if best is not None:
        return best[1]
    return [f"'{c}'" for c in _DEFAULT_COLUMNS if c not in have]


def _capital(message: str, filename: str) -> str:
    """A message as a sentence: capitalised, unless it starts with the file's name."""
    return message if message.startswith(filename) else message[:1].upper() + message[1:]


def _sentences(report: InspectionReport, columns: list[str], limit: int | None, filename: str) -> list[str]:
    """The report's errors in the guide's words: one sentence per kind of problem."""
    out: list[str] = []
    for code, count in report.issue_counts.items():
        first = next((i for i in report.issues if i.code == code), None)
        if first is None or first.severity != "error":
            continue
        if code == "empty_row":
            out.append(f"Found {count} empty row{'s' if count != 1 else ''}")
        elif code == "file_too_large" and limit is not None:
            out.append(size_limit_sentence(limit))
        elif code == "unknown_format":
            missing = _missing_columns(columns, report.mapping)
            if len(missing) == 1:
                out.append(f"Missing required {missing[0]} column")
            elif missing:
                out.append(f"Missing required {' and '.join(missing)} columns")
            out.append(_capital(first.message, filename))
        else:
            where = first.where()
            sentence = _capital(first.message, filename)
            sentence += f" ({where})" if where and where not in first.message else ""
            if count > 1:
                sentence += f"; {count - 1} more row{'s' if count > 2 else ''} like this"
            out.append(sentence)
    return out


def preview_table(
    path: str | Path,
    *,
    filename: str | None = None,
    rows: int = PREVIEW_DATA_ROWS,
    format: str | None = None,
    mapping: Mapping | dict[str, str] | Iterable[str] | None = None,
    max_bytes: int | None = None,
) -> TablePreview:
    """The guide's preview of a file (columns, first rows, statistics, sentences) plus tunelab's report.

    Two streaming passes: ``inspect_file`` for the structured issues and the
    format, then the raw rows for columns, counts and the first ``rows`` objects
    exactly as the file holds them (before any conversion), so a CSV shows its
    header and a ShareGPT JSON file its ``conversations`` field. Like
    ``inspect_file`` it never raises for a bad file: problems become
    ``validation_errors`` and ``issues``.
    """
    path = Path(path)
    report = inspect_file(path, format=format, mapping=mapping, max_bytes=max_bytes)
    if filename and filename != path.name:  # messages name the file: the client's name, never the server's
        for found in report.issues:
            found.message = found.message.replace(str(path), filename).replace(path.name, filename)
    columns: list[str] = []
    data: list[dict[str, Any]] = []
    total = 0
    too_large = report.issue_counts.get("file_too_large", 0) > 0
    if report.file_type and not too_large:
        with contextlib.suppress(DatasetError, OSError):
            columns, data, total = _scan_table(path, report.file_type, max(0, rows))
    total = max(total, report.quality.rows if report.quality else 0)
    filename = filename or path.name
    sentences = _sentences(report, columns, max_bytes, filename)
    statistics = PreviewStatistics(
        total_rows=total,
        total_columns=len(columns),
        has_required_columns=report.format is not None and "unknown_format" not in report.issue_counts,
    )
    return TablePreview(
        filename=filename,
        columns=columns,
        data=data,
        validation_errors=sentences,
        statistics=statistics,
        file_type=report.file_type,
        format=report.format,
        ok=report.ok,
        issues=report.issues,
        issue_counts=report.issue_counts,
        quality=report.quality,
    )
