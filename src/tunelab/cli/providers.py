"""`tunelab providers`: where a studio's jobs can train (``local`` and its remote providers).

Goes through the SDK (``GET /api/providers``) like ``tunelab workers``, so it
shows what the server is configured with, from any machine that reaches it:
name, kind, URL and whether a key is set (never the key itself).
``--json`` prints the API's answer as is.
"""

from __future__ import annotations

import json

import typer

from tunelab.client import DEFAULT_URL, Client


def providers(
    as_json: bool = typer.Option(False, "--json", help="Print the API's answer as JSON."),
    url: str = typer.Option(DEFAULT_URL, "--url", envvar="TUNELAB_URL", help="Studio URL."),
    token: str = typer.Option(None, "--token", envvar="TUNELAB_TOKEN", help="API token."),
) -> None:
    """List providers: name, kind, URL, key set yes/no; a job names one with --provider NAME."""
    from rich.console import Console
    from rich.table import Table

    with Client(url, token) as client:
        data = client.providers()["data"]
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(title=f"Providers ({len(data)})")
    for column in ("name", "kind", "url", "key set", "key setting"):
        table.add_column(column, no_wrap=column != "url")
    for row in data:
        key = "-" if row["kind"] == "local" else ("yes" if row["key_set"] else "no")
        table.add_row(row["name"], row["kind"], row.get("url") or "this studio's engine", key,
                      row.get("key_setting") or "-")  # fmt: skip
    Console(width=max(120, Console().width)).print(table)
    if len(data) == 1:
        typer.echo("only the local engine: add a remote provider with TUNELAB_PROVIDER_<NAME>_URL and "
                   "TUNELAB_PROVIDER_<NAME>_KEY on the server and its workers", err=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("providers")(providers)
