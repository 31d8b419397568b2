"""`tunelab tokens create|list|revoke`: API tokens, directly against the local store.

Run on the server machine (it needs the database, not the API). The token is
printed once at creation; only its SHA-256 hash is stored.
"""

from __future__ import annotations

import typer

tokens_app = typer.Typer(help="Create, list and revoke API tokens (on the server).", no_args_is_help=True)


def _session():  # type: ignore[no-untyped-def]
    from tunelab.settings import get_settings
    from tunelab.store.db import session_factory

    return session_factory(get_settings().resolved_database_url)()


@tokens_app.command("create")
def create(
    name: str = typer.Argument(..., help="A label, e.g. 'laptop' or 'ci'."),
    scope: list[str] = typer.Option(["read", "train"], "--scope", "-s", help="read, train or admin (repeatable)."),
) -> None:
    """Create a token and print it (shown only this once)."""
    from tunelab.store.tokens import create_token

    with _session() as session:
        row, secret = create_token(session, name, scope)
        typer.echo(f"created token {row.id} '{row.name}' with scopes {', '.join(row.scopes)}")
    typer.echo(secret)
    typer.echo("Store it now: it cannot be shown again. Use it as TUNELAB_TOKEN or 'Authorization: Bearer ...'.", err=True)


@tokens_app.command("list")
def list_(all_: bool = typer.Option(False, "--all", help="Include revoked tokens.")) -> None:
    """List tokens (never their secrets)."""
    from rich.console import Console
    from rich.table import Table

    from tunelab.store.tokens import list_tokens

    with _session() as session:
        rows = [r for r in list_tokens(session) if all_ or r.revoked_at is None]
    table = Table(title="API tokens")
    for column in ("id", "name", "scopes", "created", "last used", "revoked"):
        table.add_column(column)
    for row in rows:
        info = row.to_dict()
        table.add_row(row.id, row.name, ",".join(row.scopes), str(info["created_at"]),
                      str(info["last_used_at"] or "-"), str(info["revoked_at"] or "-"))  # fmt: skip
    Console().print(table)


@tokens_app.command("revoke")
def revoke(token: str = typer.Argument(..., help="Token id or name.")) -> None:
    """Revoke a token at once (kept in the list for the audit trail)."""
    from tunelab.store.tokens import revoke_token

    with _session() as session:
        row = revoke_token(session, token)
        typer.echo(f"revoked {row.id} '{row.name}'")


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens")
