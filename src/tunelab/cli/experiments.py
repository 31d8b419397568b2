"""`tunelab experiments create|list|show|stop|feedback`: A/B experiments on a running studio.

Like ``tunelab jobs`` and ``tunelab sweeps``, every command goes through the
SDK (``--url`` / ``TUNELAB_URL``): the studio's chat routes do the routing
and recording, so the numbers shown are the server's. A variant is
``NAME=MODEL:WEIGHT`` (``control=smollm2-135m-instruct:0.5``).
"""

from __future__ import annotations

import json
from typing import Any

import typer

from tunelab.client import DEFAULT_URL, Client
from tunelab.errors import InvalidInput

experiments_app = typer.Typer(help="A/B experiments: variants behind one chat name, exp:NAME (via the API).",
                              no_args_is_help=True)  # fmt: skip

UrlOpt = typer.Option(DEFAULT_URL, "--url", envvar="TUNELAB_URL", help="Studio URL.")
TokenOpt = typer.Option(None, "--token", envvar="TUNELAB_TOKEN", help="API token.")


def parse_variant(text: str) -> dict[str, Any]:
    """``NAME=MODEL:WEIGHT`` -> ``{name, model, weight}`` (the model may hold ``:``, the weight is last)."""
    name, _, rest = text.partition("=")
    model, _, weight = rest.rpartition(":")
    try:
        value = float(weight)
    except ValueError:
        value = None
    if not name or not model or value is None:
        raise InvalidInput(f"--variant {text!r} is not NAME=MODEL:WEIGHT",
                           "e.g. --variant control=smollm2-135m-instruct:0.5 --variant tuned=ft:...:0.5")  # fmt: skip
    return {"name": name, "model": model, "weight": value}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def results_table(experiment: dict[str, Any]) -> Any:
    """One row per variant: split, requests, latency, tokens, good-rating rate with its 95% interval, test."""
    from rich.table import Table

    results = experiment["results"]
    table = Table(title=f"experiment {experiment['name']} ({experiment['model']}): {experiment['status']}, "
                        f"{results['requests']} requests")  # fmt: skip
    for column in ("variant", "model", "weight", "requests", "share", "latency s", "tokens", "rated", "good rate",
                   "95% interval", "vs control p"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("variant", "model") else "right")
    for v in results["variants"]:
        interval = v.get("ci95")
        test = v.get("vs_control")
        table.add_row(v["name"], v["model"], _fmt(v["weight"]), str(v["requests"]), _fmt(v["share"]),
                      _fmt(v["mean_latency_s"]), _fmt(v["mean_completion_tokens"]), str(v["rated"]),
                      _fmt(v["good_rate"]), f"{interval[0]:.2f}-{interval[1]:.2f}" if interval else "-",
                      _fmt(test["p_value"]) if test else "-")  # fmt: skip
    return table


def _show(experiment: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(experiment, indent=2))
        return
    from rich.console import Console

    console = Console()
    console.print(results_table(experiment))
    test = experiment["results"].get("test")
    if test:
        verdict = "a significant difference" if test["significant"] else "no significant difference"
        console.print(f"{test['test']} over all variants: statistic {test['statistic']:.3g}, p = {test['p_value']:.3g} "
                      f"({verdict} at {test['alpha']})")  # fmt: skip
    else:
        console.print("no test yet: rate replies of at least two variants (thumbs or 1-5 scores)")


@experiments_app.command("create")
def create(
    name: str = typer.Argument(..., help="Unique name; chat with it as model exp:NAME."),
    variant: list[str] = typer.Option(
        ..., "--variant", "-v", help="NAME=MODEL:WEIGHT, repeated; weights sum to 1."
    ),
    description: str = typer.Option("", "--description", help="What the experiment tests."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    url: str = UrlOpt,
    token: str | None = TokenOpt,
) -> None:
    """Create an A/B experiment; requests for exp:NAME are split over its variants."""
    with Client(url, token) as client:
        _show(
            client.create_experiment(name, [parse_variant(v) for v in variant], description),
            as_json,
        )


@experiments_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON."), url: str = UrlOpt,
          token: str | None = TokenOpt) -> None:  # fmt: skip
    """List experiments with their status, split and request counts."""
    with Client(url, token) as client:
        page = client.list_experiments()
    if as_json:
        typer.echo(json.dumps(page, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{page['count']} experiments")
    for column in ("name", "status", "variants", "requests", "created"):
        table.add_column(column)
    for e in page["data"]:
        split = ", ".join(f"{v['name']}={v['model']} ({v['weight']:g})" for v in e["variants"])
        table.add_row(
            e["name"], e["status"], split, str(e["results"]["requests"]), str(e["created_at"])
        )
    Console().print(table)


@experiments_app.command("show")
def show(name: str = typer.Argument(..., help="Experiment name."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON."), url: str = UrlOpt,
         token: str | None = TokenOpt) -> None:  # fmt: skip
    """Per-variant results: requests, latency, tokens, good-rating rate with its 95% interval, tests."""
    with Client(url, token) as client:
        _show(client.get_experiment(name), as_json)


@experiments_app.command("stop")
def stop(name: str = typer.Argument(..., help="Experiment name."), url: str = UrlOpt,
         token: str | None = TokenOpt) -> None:  # fmt: skip
    """Stop routing exp:NAME (its records and results stay)."""
    with Client(url, token) as client:
        experiment = client.stop_experiment(name)
    typer.echo(
        f"experiment {experiment['name']} stopped after {experiment['results']['requests']} requests"
    )


@experiments_app.command("feedback")
def feedback(
    name: str = typer.Argument(..., help="Experiment name."),
    response_id: str = typer.Argument(
        ..., help="The `id` of a chat completion answered for exp:NAME."
    ),
    rating: str | None = typer.Option(None, "--rating", help="up or down."),
    score: float | None = typer.Option(None, "--score", min=1, max=5, help="A 1-5 score."),
    comment: str | None = typer.Option(None, "--comment", help="Free text."),
    url: str = UrlOpt,
    token: str | None = TokenOpt,
) -> None:
    """Rate one reply of the experiment."""
    with Client(url, token) as client:
        done = client.experiment_feedback(
            name, response_id, rating=rating, score=score, comment=comment
        )
    typer.echo(f"rated {done['response_id']} (variant {done['variant']})")


def register(app: typer.Typer) -> None:
    app.add_typer(experiments_app, name="experiments")
