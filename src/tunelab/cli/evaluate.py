"""`tunelab eval MODEL --data FILE|DATASET`: metrics, judge and retention of a model, in the foreground.

The same runner as ``POST /api/evaluations`` and the automatic evaluation after a
job (``tunelab.evaluation.run``); the result is recorded in the local store
(source ``cli``) so the dashboard lists it too, and printed as rich tables.
Locally any path works: a model folder, an adapter folder, a run directory, an
exported model, a dataset file; names (collection entries, job ids, built-in
ids, stored datasets) are looked up first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunelab.evaluation.metrics import METRICS


def _location(session: Any, settings: Any, name: str) -> str:
    """A collection entry, job id or built-in id as chat resolves it; else the name itself (a path, a Hub id)."""
    from tunelab.errors import NotFound
    from tunelab.serving.registry import chat_location

    if Path(name).expanduser().exists():
        return str(Path(name).expanduser().resolve())
    try:
        return chat_location(session, settings, name)
    except NotFound:
        return name


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


def print_result(console: Console, result: dict[str, Any], evaluation_id: str | None = None) -> None:
    """Metrics per side (with the change), retention with what was lost, judge summary."""
    summary = result.get("summary") or {}
    labels = result.get("sides") or {"model": result.get("model"), "against": result.get("against")}
    others = [side for side in summary if side != "model"]
    title = f"Evaluation {evaluation_id or ''} ({result.get('rows_evaluated', 0)} rows)".replace("  ", " ")
    table = Table(title=title)
    table.add_column("metric")
    for side in ["model", *others]:
        table.add_column(escape(str(labels.get(side, side))), justify="right")
    if len(others) == 1:
        table.add_column("change", justify="right")
    names = [m for m in [*METRICS, "judge_score"] if any(m in side for side in summary.values())]
    for name in names:
        value = summary.get("model", {}).get(name)
        cells = [name, _fmt(value), *(_fmt(summary[side].get(name)) for side in others)]
        if len(others) == 1:
            other = summary[others[0]].get(name)
            change = value - other if isinstance(value, int | float) and isinstance(other, int | float) else None
            cells.append(f"{change:+.4g}" if change is not None else "-")
        table.add_row(*cells)
    if names:
        console.print(table)
    retention = result.get("retention")
    if retention:
        base = retention.get("base_correct")
        line = f"Retention ({retention['probe']} probe, {retention['size']} questions): model {retention['tuned_correct']} right"
        line += f", base {base} right" if base is not None else " (no base to compare with)"
        console.print(escape(line) + (" [bold red]REGRESSION[/]" if retention.get("regression") else ""))
        for item in retention.get("lost", [])[:20]:
            console.print(f"  lost: {escape(item['question'])}  base: {escape(item['base'][:60])!r}  "
                          f"now: {escape(item['tuned'][:60])!r}")  # fmt: skip
    judge = result.get("judge")
    if judge:
        for side in summary:
            if side in judge:
                s = judge[side]
                console.print(escape(f"Judge {judge['model']} on {side}: mean {_fmt(s['judge_score'])}, {s['graded']} graded, "
                                     f"{s['failed']} failed") + (f" (first error: {escape(str(s['first_error']))})" if s["failed"] else ""))


def evaluate(
    model: str = typer.Argument(..., help="Built-in id, job id, collection entry, model/adapter/run folder, exported model."),
    data: str | None = typer.Option(None, "--data", "-d", help="Dataset file or stored dataset id/name to score on."),
    metrics: str | None = typer.Option(None, "--metrics", "-m", help=f"Comma-separated: {', '.join(METRICS)}, or rouge, loss, all."),
    against: list[str] | None = typer.Option(None, "--against", help="Another model to compare with, repeatable for several side by side (default: the base of an adapter or job)."),
    probe: bool = typer.Option(False, "--probe", help="Also ask the shipped general-ability probe and report retention."),
    regression_set: str | None = typer.Option(None, "--regression-set", help="A dataset used as the retention probe."),
    no_base: bool = typer.Option(False, "--no-base", help="Do not compare an adapter or job with its base."),
    judge: str | None = typer.Option(None, "--judge", help="OpenAI-compatible judge URL, e.g. http://127.0.0.1:8001/v1."),
    judge_model: str = typer.Option("default", "--judge-model", help="The judge's model name."),
    judge_key: str | None = typer.Option(None, "--judge-key", envvar="TUNELAB_JUDGE_API_KEY", help="Judge API key."),
    prompt_column: str | None = typer.Option(None, "--prompt-column", help="Column with the prompt (files in no known format)."),
    reference_column: str | None = typer.Option(None, "--reference-column", help="Column with the reference reply."),
    max_rows: int = typer.Option(200, "--max-rows", min=1, max=100_000, help="At most this many dataset rows."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1, max=4096, help="Tokens per reply."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Also write the whole result (rows included) as JSON."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON instead of tables."),
) -> None:
    """Evaluate a model: BLEU, chrF, ROUGE, exact match, length, token accuracy, loss; judge; retention."""
    from tunelab.errors import InvalidInput
    from tunelab.evaluation import service
    from tunelab.jobs import datasets
    from tunelab.settings import get_settings
    from tunelab.store.db import session_factory

    if not (data or probe or regression_set):
        raise InvalidInput("nothing to evaluate on", "give --data FILE, --probe or --regression-set FILE")
    settings = get_settings()
    factory = session_factory(settings.resolved_database_url)
    judge_body = {"url": judge, "model": judge_model, "api_key": judge_key} if judge else None
    with factory() as session:
        request: dict[str, Any] = {
            "model": _location(session, settings, model), "model_name": model, "compare_base": not no_base,
            "probe": probe and not regression_set, "metrics": metrics, "prompt_column": prompt_column,
            "reference_column": reference_column, "max_rows": max_rows, "max_new_tokens": max_new_tokens,
            "dataset": data, "judge": judge_body,
        }  # fmt: skip
        if against:
            request["against"] = [_location(session, settings, name) for name in against]
            request["against_name"] = list(against)
        if data:
            request["data_path"] = datasets.resolve(session, data, settings=settings, field="data")
        if regression_set:
            request["regression_set_path"] = datasets.resolve(session, regression_set, settings=settings)
        row = service.create(session, request, source="cli")
        evaluation_id = row.id
    console = Console()
    if not as_json:
        console.print(f"evaluation {evaluation_id}: generating ...")
    done = service.execute(factory, evaluation_id, judge=judge_body)
    assert done is not None
    if done.status != "completed":
        from tunelab.errors import TunelabError

        error = done.error or {}
        raise TunelabError(error.get("message", "evaluation failed"), error.get("hint", ""),
                           code=error.get("code", "evaluation_failed"))  # fmt: skip
    result = {**(done.summary or {}), "rows": done.rows, "id": done.id}
    if output:
        output.write_text(json.dumps(result, indent=2))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_result(console, result, done.id)


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
