"""Evaluation rows: a prompt (as chat messages) and the reference reply, from any dataset.

A dataset in any format the studio reads gives its rows through
``tunelab.datasets.iter_records``: the prompt is the conversation up to its
last assistant turn and the reference is that turn. A file whose columns are
not a known format (or that holds other columns too) can name them:
``prompt_column`` and ``reference_column``. A missing column, or a dataset
without any assistant reply to compare against, is an error that lists the
columns the file does have, so the fix is one look away.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.datasets.records import Record
from tunelab.errors import DatasetError


@dataclass
class EvalRow:
    """One prompt with its reference reply; ``accepted`` are extra right answers (the probe's)."""

    messages: list[dict[str, str]]
    reference: str
    accepted: list[str] = field(default_factory=list)
    id: str | None = None

    @property
    def prompt(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


def _raw_rows(path: Path) -> list[Any]:
    from tunelab.datasets.readers import detect_file_type, read_rows
    from tunelab.datasets.source import check_file

    path, _ = check_file(path)
    values = []
    for raw in read_rows(path, detect_file_type(path)):
        if raw.problem is not None:
            raise raw.problem.to_error()
        values.append(raw.value)
    return values


def _columns(values: list[Any]) -> list[str]:
    names: dict[str, None] = {}
    for value in values[:50]:
        if isinstance(value, dict):
            names.update(dict.fromkeys(str(k) for k in value))
    return list(names)


def _missing(kind: str, column: str, found: list[str]) -> DatasetError:
    shown = ", ".join(found) or "none"
    return DatasetError(
        f"the {kind} column {column!r} is not in the dataset; columns found: {shown}",
        hint=f"name one of the columns found with --{kind}-column (API: {kind}_column)",
        code="missing_column",
        details={"column": column, "columns_found": found},
    )


def _from_columns(path: Path, prompt_column: str | None, reference_column: str | None) -> list[EvalRow]:
    values = _raw_rows(path)
    found = _columns(values)
    named = [("prompt", prompt_column), ("reference", reference_column)]
    # the columns the user named are checked first: their typo is the likelier mistake
    for kind, column in sorted(named, key=lambda item: item[1] is None):
        if (column or kind) not in found:
            raise _missing(kind, column or kind, found)
    prompt_column, reference_column = prompt_column or "prompt", reference_column or "reference"
    rows = []
    for value in values:
        if not isinstance(value, dict) or value.get(prompt_column) in (None, ""):
            continue
        reference = value.get(reference_column)
        rows.append(EvalRow([{"role": "user", "content": str(value[prompt_column])}],
                            "" if reference is None else str(reference)))  # fmt: skip
    return rows


def _from_records(path: Path) -> list[EvalRow]:
    from tunelab.datasets import iter_records

    return rows_from_records(iter_records(path))


def rows_from_records(records: Iterable[Record]) -> list[EvalRow]:
    """Prompt (the conversation before its last assistant turn) and reference (that turn) per record."""
    rows = []
    for record in records:
        messages = [{"role": m.role, "content": m.content} for m in (record.messages or [])]
        if record.chosen:
            messages += [{"role": m.role, "content": m.content} for m in record.chosen]
        if not messages or messages[-1]["role"] != "assistant":
            continue
        prompt = messages[:-1]
        if any(m["role"] == "user" for m in prompt):
            rows.append(EvalRow(prompt, messages[-1]["content"]))
    return rows


def load_rows(path: str | Path, *, prompt_column: str | None = None, reference_column: str | None = None,
              limit: int | None = None) -> list[EvalRow]:  # fmt: skip
    """The evaluation rows of a dataset file (a stored version's ``records.jsonl`` included)."""
    path = Path(path)
    if prompt_column or reference_column:
        rows = _from_columns(path, prompt_column, reference_column)
    else:
        try:
            rows = _from_records(path)
        except DatasetError as exc:
            if exc.code != "unknown_format":
                raise
            found = _columns(_raw_rows(path))
            raise DatasetError(
                f"no prompt and reference in {path.name}: its columns ({', '.join(found) or 'none'}) are not a "
                "known dataset format",
                hint="name them with --prompt-column and --reference-column (API: prompt_column, reference_column)",
                code="missing_column",
                details={"columns_found": found},
            ) from None
        if not rows:
            found = _columns(_raw_rows(path))
            raise DatasetError(
                f"{path.name} has no rows with an assistant reply to use as the reference; columns found: "
                f"{', '.join(found) or 'none'}",
                hint="evaluate on a dataset with replies, or name the columns with --prompt-column and "
                "--reference-column",
                code="missing_column",
                details={"columns_found": found},
            )
    return rows[:limit] if limit else rows
