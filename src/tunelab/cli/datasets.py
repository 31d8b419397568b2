"""``tunelab datasets``: inspect, repair, import and list datasets.

Thin: ``inspect`` and ``repair`` work on a file through ``tunelab.datasets``
(nothing is stored); ``import`` and ``list`` go through the dataset service
(``tunelab.jobs.datasets``) on the store the server uses (``TUNELAB_DATABASE_URL``,
else the home's SQLite file), so an imported dataset is what ``GET
/api/datasets`` and the dashboard list. Results are rendered with rich (or as
JSON with ``--json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunelab.datasets import (
    FORMATS,
    InspectionReport,
    RepairReport,
    inspect_file,
    repair_file,
)
from tunelab.errors import InvalidInput

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
    from tunelab.training.token_report import make_counter

    counter = make_counter(tokenizer)  # the engine's own counts when a tokenizer is given
    report = inspect_file(file, format=format, mapping=map_ or None, counter=counter,
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


def _store_session() -> Any:
    """A session on the server's store: the one registry of datasets."""
    from tunelab.settings import get_settings
    from tunelab.store.db import session_factory

    return session_factory(get_settings().resolved_database_url)()


def _dataset_name(file: Path, name: str | None) -> str:
    """``--name``, else the file's stem; either must be a label, never a path."""
    from tunelab.jobs.names import check_name

    if name is not None:
        return check_name(name, "--name") or ""
    try:
        return check_name(file.stem, "name") or ""
    except InvalidInput:
        raise InvalidInput(
            f"the file name {file.stem!r} is not usable as a dataset name",
            "pass a name with --name, e.g. --name 'Customer Support Q&A' (any printable text)",
        ) from None


@datasets_app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="Dataset file to normalise and store."),
    format: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    map_: list[str] | None = typer.Option(None, "--map", "-m", help=MAP_HELP),
    name: str | None = typer.Option(None, "--name", "-n", help="Dataset name (a label); default the file's stem. "
                                    "A known name gets a new latest version."),
    description: str = typer.Option("", "--description", help="Description of a new dataset."),
    tag: list[str] | None = typer.Option(None, "--tag", "-t", help="Tag the dataset (repeat for several); "
                                         "added to its tags. List by tag with `datasets list --tag`."),
) -> None:
    """Normalise a file into an immutable version, register it in the store and print its version id."""
    from tunelab.jobs import datasets as dataset_service

    label = _dataset_name(file, name)
    with _store_session() as session:
        dataset, version = dataset_service.ingest(
            session, file, name=label, description=description, format=format, mapping=map_ or None,
            tags=tag or None,
        )
    counts = ", ".join(f"{k}: {v:,}" for k, v in version.counts.items())
    typer.echo(f"{version.id}  ({version.format}, {counts})  dataset {dataset.name!r}")


@datasets_app.command("list")
def list_command(
    tag: str | None = typer.Option(None, "--tag", "-t", help="Only datasets with this tag."),
) -> None:
    """List stored datasets and their versions, newest first (what GET /api/datasets lists)."""
    from tunelab.jobs import datasets as dataset_service

    table = Table(title="Datasets")
    for column in ("dataset", "tags", "version", "", "format", "records", "source", "created"):
        table.add_column(column, no_wrap=column in ("version", "created"))
    with _store_session() as session:
        datasets, _total = dataset_service.list_datasets(session, limit=10_000, tag=tag)
        for dataset in datasets:
            for v in reversed(dataset_service.list_versions(session, dataset.id)):
                table.add_row(escape(dataset.name), escape(", ".join(dataset.tags or [])), v.id, "latest" if v.id == dataset.latest_version_id else "",
                              v.format or "-", f"{v.num_rows:,}", escape(v.note),
                              f"{v.created_at:%Y-%m-%d %H:%M}")  # fmt: skip
    _console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
