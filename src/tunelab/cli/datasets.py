"""``tunelab datasets``: inspect, repair, import and list datasets.

Thin over ``tunelab.datasets``: each command calls one service function and
renders its pydantic result with rich (or as JSON with ``--json``).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunelab.datasets import (
    FORMATS,
    InspectionReport,
    RepairReport,
    inspect_file,
    list_versions,
    normalize_file,
    repair_file,
)

datasets_app = typer.Typer(help="Inspect, repair, import and list datasets.", no_args_is_help=True)

MAP_HELP = (
    "Mapping rule, repeatable: COLUMN=FIELD renames a column (e.g. prompt=instruction), "
    "role:TAG=ROLE maps a role tag (e.g. role:bot=assistant), key:KEY=from|value|role|content "
    "renames a message key."
)
FORMAT_HELP = f"Dataset format, skipping detection: {', '.join(FORMATS)}."


def _console() -> Console:
    return Console(width=120, soft_wrap=False)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + f" ... (+{len(text) - limit} chars)"


def render_report(report: InspectionReport, console: Console) -> None:
    """Print format, issues, quality report and preview as rich tables."""
    console.print(f"[bold]{escape(report.path)}[/bold]  {report.size_bytes:,} bytes  file type: {report.file_type}  "
                  f"format: [bold]{report.format}[/bold]")  # fmt: skip
    if not report.mapping.is_empty():
        console.print(f"mapping: {' '.join(report.mapping.rules())}")
    if report.issues:
        table = Table(title=f"Issues: {report.errors} errors, {report.warnings} warnings")
        for column in ("severity", "code", "where", "message", "hint"):
            table.add_column(column, overflow="fold")
        for item in report.issues:
            color = "red" if item.severity == "error" else "yellow"
            table.add_row(f"[{color}]{item.severity}[/{color}]", item.code, item.where(), escape(item.message),
                          escape(item.hint))  # fmt: skip
        console.print(table)
        hidden = sum(report.issue_counts.values()) - len(report.issues)
        if hidden:
            console.print(f"({hidden} more issues not shown; counts per code: {report.issue_counts})")
    else:
        console.print("[green]No issues found.[/green]")
    if report.quality is not None:
        q = report.quality
        table = Table(title="Quality report", show_header=False)
        table.add_column("metric")
        table.add_column("value", overflow="fold")
        tokens = q.tokens
        rows = [
            ("rows", f"{q.rows:,} ({q.valid_rows:,} valid, {q.invalid_rows:,} invalid)"),
            ("kinds", ", ".join(f"{k}: {v:,}" for k, v in q.kinds.items()) or "-"),
            ("duplicates", f"{q.duplicates:,}"),
            ("empty rows", f"{q.empty_rows:,}"),
            ("role counts", ", ".join(f"{k}: {v:,}" for k, v in q.role_counts.items()) or "-"),
            ("turns / conversation", f"mean {q.turns.mean}, median {q.turns.median}, max {q.turns.max}"),
            ("tokenizer", tokens.tokenizer),
            ("tokens / record", f"mean {tokens.mean}, median {tokens.median}, p95 {tokens.p95}, max {tokens.max}"),
            (f"over max_length {q.max_length}", f"{q.over_max_length:,} ({q.over_max_length_share:.1%})"),
        ]
        for name, value in rows:
            table.add_row(name, escape(value))
        console.print(table)
    if report.preview:
        table = Table(title="Preview (as the model sees it)")
        for column in ("row", "kind", "tokens", "rendered"):
            table.add_column(column, overflow="fold")
        for item in report.preview:
            table.add_row(str(item.row), item.kind, str(item.tokens), escape(_short(item.rendered)))
        console.print(table)


@datasets_app.command("inspect")
def inspect_command(
    file: Path = typer.Argument(..., help="Dataset file: CSV, TSV, JSON, JSONL, TXT or Parquet."),
    format: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    map_: list[str] | None = typer.Option(None, "--map", "-m", help=MAP_HELP),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="Model folder or cached Hub name whose tokenizer counts tokens."),
    max_length: int = typer.Option(2048, "--max-length", min=1, help="Training max_length to compare against."),
    preview: int = typer.Option(5, "--preview", min=0, help="Rows to preview."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Validate a dataset and print its format, issues, quality report and preview; exit 1 on errors."""
    report = inspect_file(file, format=format, mapping=map_ or None, tokenizer=tokenizer,
                          max_length=max_length, preview_rows=preview)  # fmt: skip
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        render_report(report, _console())
    if report.errors:
        raise typer.Exit(1)


def _render_repair(report: RepairReport) -> None:
    console = _console()
    console.print(f"Repaired {report.source} -> {report.output or report.version_id} "
                  f"({report.rows_in:,} rows in, {report.rows_out:,} records out)")  # fmt: skip
    for line in report.summary():
        console.print(f"- {escape(line)}")


@datasets_app.command("repair")
def repair_command(
    file: Path = typer.Argument(..., help="Dataset file to repair (left untouched)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the repaired JSONL."),
    format: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    map_: list[str] | None = typer.Option(None, "--map", "-m", help=MAP_HELP),
    drop_invalid: bool = typer.Option(False, "--drop-invalid", help="Drop rows with other errors too (listed)."),
    as_json: bool = typer.Option(False, "--json", help="Print the repair report as JSON."),
) -> None:
    """Write a repaired copy: encodings fixed, whitespace stripped, empty rows and duplicates dropped."""
    report = repair_file(file, out, format=format, mapping=map_ or None, drop_invalid=drop_invalid)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _render_repair(report)


@datasets_app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="Dataset file to normalise and store."),
    format: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    map_: list[str] | None = typer.Option(None, "--map", "-m", help=MAP_HELP),
) -> None:
    """Normalise a file into an immutable, content-addressed version and print its id."""
    version = normalize_file(file, format=format, mapping=map_ or None)
    counts = ", ".join(f"{k}: {v:,}" for k, v in version.counts.items())
    typer.echo(f"{version.version_id}  ({version.format}, {counts})")


@datasets_app.command("list")
def list_command() -> None:
    """List stored dataset versions, newest first."""
    table = Table(title="Dataset versions")
    for column in ("version", "source", "format", "records", "created", "parent"):
        table.add_column(column)
    for v in list_versions():
        table.add_row(v.version_id, v.source_name, v.format or "-", f"{v.counts.get('records', 0):,}",
                      v.created, v.parent or "")  # fmt: skip
    _console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
