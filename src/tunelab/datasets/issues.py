"""Validation issues: what is wrong with a dataset, where, and how to fix it.

Every problem found while reading or normalising a file becomes an ``Issue``
with a stable ``code``, the ``row`` (0-based record index) and/or ``line``
(1-based line in the file) it concerns, and a ``hint`` telling the user what to
do. ``iter_records`` raises the first error as a ``DatasetError`` carrying the
same fields; ``inspect_file`` collects them all (a bounded number per code).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tunelab.errors import DatasetError

Severity = Literal["error", "warning"]

#: Every issue code with its default severity. Errors block normalisation.
CODES: dict[str, Severity] = {
    "file_unreadable": "error",
    "wrong_file_type": "error",
    "file_too_large": "error",
    "bad_json": "error",
    "non_utf8": "error",
    "unknown_format": "error",
    "missing_column": "error",
    "bad_value": "error",
    "empty_row": "error",
    "unknown_role": "error",
    "no_assistant_turn": "error",
    "bad_tool_call": "error",
    "no_rows": "error",
    "empty_prompt": "warning",
    "empty_reply": "warning",
    "too_few_rows": "warning",
    "duplicate_rows": "warning",
    "over_max_length": "warning",
}

REPAIR_HINT = "or run `tunelab datasets repair FILE -o OUT`"


class Issue(BaseModel):
    """One problem found in a dataset, located by row and/or line."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity = Field("error", description="`error` blocks normalisation; `warning` does not.")
    code: str = Field(..., description="Stable machine-readable code, e.g. `bad_json`.")
    message: str = Field(..., description="What is wrong, in words.")
    hint: str = Field("", description="How to fix it.")
    row: int | None = Field(None, ge=0, description="0-based record index, when known.")
    line: int | None = Field(None, ge=1, description="1-based line in the file, when known.")

    def where(self) -> str:
        """A short location such as ``row 3, line 5``."""
        parts = []
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.line is not None:
            parts.append(f"line {self.line}")
        return ", ".join(parts)

    def to_error(self) -> DatasetError:
        where = self.where()
        message = f"{self.message} ({where})" if where else self.message
        return DatasetError(
            message,
            self.hint,
            code=self.code,
            details={"row": self.row, "line": self.line},
        )


def issue(
    code: str,
    message: str,
    hint: str = "",
    *,
    row: int | None = None,
    line: int | None = None,
) -> Issue:
    """Build an issue with the default severity of its code."""
    return Issue(severity=CODES.get(code, "error"), code=code, message=message, hint=hint, row=row, line=line)


class RowProblem(Exception):
    """Raised by converters for one bad row; the caller adds row and line."""

    def __init__(self, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def at(self, row: int | None, line: int | None) -> Issue:
        return issue(self.code, self.message, self.hint, row=row, line=line)


class IssueLog(BaseModel):
    """Issues kept up to ``per_code`` each (memory stays flat), with full counts."""

    model_config = ConfigDict(extra="forbid")

    per_code: int = Field(20, ge=1, le=100_000, description="Issues kept per code.")
    issues: list[Issue] = Field(default_factory=list, description="Kept issues, in order found.")
    counts: dict[str, int] = Field(default_factory=dict, description="Issues found per code.")

    def add(self, item: Issue) -> None:
        seen = self.counts.get(item.code, 0)
        self.counts[item.code] = seen + 1
        if seen < self.per_code:
            self.issues.append(item)

    @property
    def error_count(self) -> int:
        return sum(n for code, n in self.counts.items() if CODES.get(code, "error") == "error")
