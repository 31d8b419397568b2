"""`tunelab ratings ...`: rate an evaluation's side-by-side rows and read the win rates (via the API).

Ratings are made where people read the rows (the dashboard's evaluation
page); this is the same through the SDK for scripts and terminals: ``add`` one
verdict, ``list`` them, ``summary`` the win rates per pair of sides.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunelab.cli.jobs import TokenOpt, UrlOpt
from tunelab.client import Client

ratings_app = typer.Typer(help="Rate evaluation rows side by side; win rates per model pair (via the API).",
                          no_args_is_help=True)  # fmt: skip


@ratings_app.command("add")
def add(
    evaluation_id: str = typer.Argument(..., help="Evaluation id (ev-...)."),
    row: int = typer.Argument(..., min=0, help="Row index (0 = the first row)."),
    verdict: str = typer.Argument(..., help="better, worse or tie: side A against side B."),
    side_a: str = typer.Option("model", "--a", help="Side A: model, against, against_2 ..."),
    side_b: str = typer.Option("against", "--b", help="Side B."),
    comment: str = typer.Option("", "--comment", help="Why (optional)."),
    rater: str = typer.Option("", "--rater", help="Who rates (default: the token's name)."),
    url: str = UrlOpt,
    token: str = TokenOpt,
) -> None:
    """Rate one row: is side A's reply better than, worse than or as good as side B's?"""
    with Client(url, token) as client:
        rating = client.rate(
            evaluation_id, row, verdict, side_a=side_a, side_b=side_b, comment=comment, rater=rater
        )
    a, b, verdict = rating["side_a"], rating["side_b"], rating["verdict"]
    said = f"{a} and {b} tie" if verdict == "tie" else f"{a} {verdict} than {b}"
    typer.echo(f"row {rating['row_index']}: {said}")


@ratings_app.command("list")
def list_(evaluation_id: str = typer.Argument(..., help="Evaluation id."), url: str = UrlOpt,
          token: str = TokenOpt) -> None:  # fmt: skip
    """Every rating of an evaluation."""
    with Client(url, token) as client:
        page = client.list_ratings(evaluation_id)
    table = Table(title=f"Ratings of {evaluation_id} ({page['count']})")
    for column in ("row", "side A", "verdict", "side B", "rater", "comment"):
        table.add_column(column)
    for r in page["data"]:
        table.add_row(
            str(r["row_index"]),
            r["side_a"],
            r["verdict"],
            r["side_b"],
            escape(r["rater"]),
            escape(r["comment"]),
        )
    Console().print(table)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


@ratings_app.command("summary")
def summary(evaluation_id: str = typer.Argument(..., help="Evaluation id."), url: str = UrlOpt,
            token: str = TokenOpt) -> None:  # fmt: skip
    """Win rates per pair of sides: wins, losses, ties and a 95% Wilson interval."""
    with Client(url, token) as client:
        result = client.ratings_summary(evaluation_id)
    table = Table(title=f"Win rates of {evaluation_id} ({result['ratings']} ratings, "
                        f"{result['rows_rated']} of {result['rows']} rows)")  # fmt: skip
    for column in ("A", "B", "wins", "losses", "ties", "A's win rate", "95% interval"):
        table.add_column(column, justify="left" if column in ("A", "B") else "right")
    for p in result["pairs"]:
        interval = f"{_pct(p['interval'][0])}-{_pct(p['interval'][1])}" if p["interval"] else "-"
        table.add_row(escape(f"{p['label_a']} ({p['side_a']})"), escape(f"{p['label_b']} ({p['side_b']})"),
                      str(p["wins"]), str(p["losses"]), str(p["ties"]), _pct(p["win_rate"]), interval)  # fmt: skip
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(ratings_app, name="ratings")
