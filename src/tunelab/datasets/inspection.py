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
from tunelab.datasets.quality import QualityAccumulator, QualityReport
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
