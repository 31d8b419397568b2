"""`tunelab ensembles create|list|show|delete|eval`: groups of models served and evaluated as one.

``create``, ``list``, ``show`` and ``delete`` go through the SDK against a
running studio (``--url`` / ``TUNELAB_URL``), where ``ens:NAME`` is then a
chat model. ``eval`` runs in the foreground like ``tunelab eval`` on the
local studio's store: the ensemble and each of its members on the same rows,
their metrics side by side (``tunelab eval ens:NAME --against MEMBER ...``).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import typer

from tunelab.client import DEFAULT_URL, Client

ensembles_app = typer.Typer(
    help="Ensembles: several models answering as one, ens:NAME.", no_args_is_help=True
)

UrlOpt = typer.Option(DEFAULT_URL, "--url", envvar="TUNELAB_URL", help="Studio URL.")
TokenOpt = typer.Option(None, "--token", envvar="TUNELAB_TOKEN", help="API token.")
JsonOpt = typer.Option(False, "--json", help="Print JSON.")


def _line(e: dict[str, Any]) -> str:
    return f"{e['model']}  {e['method']}  members: {', '.join(e['members'])}"


@ensembles_app.command("create")
def create(
    name: str = typer.Argument(..., help="Unique name; chat with it as model ens:NAME."),
    member: list[str] = typer.Option(
        ..., "--member", "-m", help="A model from GET /v1/models, repeated (2 or more)."
    ),
    method: str = typer.Option("average", "--method", help="average (one vocabulary) or vote."),
    description: str = typer.Option("", "--description", help="What the ensemble is."),
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    token: str | None = TokenOpt,
) -> None:
    """Create an ensemble: averaged next-token probabilities, or the members' majority answer."""
    with Client(url, token) as client:
        made = client.create_ensemble(name, member, method, description)
    typer.echo(json.dumps(made, indent=2) if as_json else f"created {_line(made)}")


@ensembles_app.command("list")
def list_(as_json: bool = JsonOpt, url: str = UrlOpt, token: str | None = TokenOpt) -> None:
    """List ensembles."""
    with Client(url, token) as client:
        page = client.list_ensembles()
    if as_json:
        typer.echo(json.dumps(page, indent=2))
        return
    for e in page["data"]:
        typer.echo(_line(e))
    if not page["data"]:
        typer.echo("no ensembles yet: tunelab ensembles create NAME --member A --member B")


@ensembles_app.command("show")
def show(name: str = typer.Argument(..., help="Ensemble name."), url: str = UrlOpt,
         token: str | None = TokenOpt) -> None:  # fmt: skip
    """One ensemble as JSON."""
    with Client(url, token) as client:
        typer.echo(json.dumps(client.get_ensemble(name), indent=2))


@ensembles_app.command("delete")
def delete(name: str = typer.Argument(..., help="Ensemble name."), url: str = UrlOpt,
           token: str | None = TokenOpt) -> None:  # fmt: skip
    """Delete an ensemble (its evaluations stay)."""
    with Client(url, token) as client:
        client.delete_ensemble(name)
    typer.echo(f"deleted ensemble {name}")


@ensembles_app.command("eval")
def evaluate_ensemble(
    name: str = typer.Argument(..., help="Ensemble name."),
    data: str = typer.Option(
        ..., "--data", "-d", help="Dataset file or stored dataset id/name to score on."
    ),
    metrics: str | None = typer.Option(
        None, "--metrics", help="Comma-separated metric names or groups."
    ),
    max_rows: int = typer.Option(
        200, "--max-rows", min=1, max=100_000, help="At most this many dataset rows."
    ),
    max_new_tokens: int = typer.Option(
        128, "--max-new-tokens", min=1, max=4096, help="Tokens per reply."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Also write the whole result as JSON."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Evaluate the ensemble and each member on the same rows: metrics side by side."""
    from tunelab.cli.evaluate import evaluate
    from tunelab.serving import ensembles
    from tunelab.settings import get_settings
    from tunelab.store.db import session_factory

    settings = get_settings()
    with session_factory(settings.resolved_database_url)() as session:
        row = ensembles.get(session, name)
        members = list(row.members)
    given = {"model": ensembles.PREFIX + row.name, "data": data, "metrics": metrics, "against": members,
             "no_base": True, "max_rows": max_rows, "max_new_tokens": max_new_tokens, "output": output,
             "as_json": as_json}  # fmt: skip
    defaults = {
        p.name: getattr(p.default, "default", p.default)
        for p in inspect.signature(evaluate).parameters.values()
    }
    evaluate(**{**defaults, **given})


def register(app: typer.Typer) -> None:
    app.add_typer(ensembles_app, name="ensembles")
