"""`tunelab sweep SWEEP.yaml` (start and follow a sweep) and `tunelab sweeps list/show/cancel/best`.

Like ``tunelab jobs``, every command goes through the SDK against a running
studio (``--url`` / ``TUNELAB_URL``): the studio's sweep driver makes the
trials and its workers train them, so closing the terminal stops nothing.
A dataset given as a local file is uploaded first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from tunelab.client import DEFAULT_URL, Client
from tunelab.errors import InvalidInput

sweeps_app = typer.Typer(help="List, inspect and control hyperparameter sweeps (via the API).", no_args_is_help=True)

UrlOpt = typer.Option(DEFAULT_URL, "--url", envvar="TUNELAB_URL", help="Studio URL.")
TokenOpt = typer.Option(None, "--token", envvar="TUNELAB_TOKEN", help="API token.")


def load_sweep_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror}", "give the path of a sweep YAML file") from None
    except yaml.YAMLError as error:
        raise InvalidInput(f"{path} is not valid YAML: {error}", "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} must hold a mapping (model, dataset, search ...)", "see examples/sweep-identity.yaml")
    return data


def _upload_if_file(client: Client, data: dict[str, Any], base: Path) -> None:
    dataset = data.get("dataset")
    if not isinstance(dataset, str):
        return
    for candidate in (Path(dataset), base / dataset):
        if candidate.is_file():
            uploaded = client.upload_dataset(str(candidate))
            data["dataset"] = uploaded["version"]["id"]
            typer.echo(f"uploaded {candidate} as dataset version {data['dataset']}", err=True)
            return


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def trials_table(sweep: dict[str, Any], trials: list[dict[str, Any]]) -> Any:
    """The live table: one row per trial, its values, state, job and objective."""
    from rich.table import Table

    params = list(sweep["search"])
    best = sweep.get("best_trial")
    counts = sweep["trials"]
    budget = f"{sweep['n_trials']} trials" if sweep.get("n_trials") else f"{sweep['budget_minutes']:g} min"
    table = Table(title=f"sweep {sweep['id']} ({sweep['name']}): {sweep['status']}, {sweep['sampler']}, "
                        f"{counts['total']} of {budget}, {sweep['direction']} {sweep['objective']}")  # fmt: skip
    for column in ["#", "state", "job", "step", *params, sweep["objective"]]:
        table.add_column(column, justify="right" if column not in ("state", "job") else "left")
    for trial in trials:
        job = trial.get("job") or {}
        mark = " *" if trial["number"] == best else ""
        table.add_row(str(trial["number"]) + mark, trial["state"], job.get("id") or "-", _fmt(job.get("global_step")),
                      *[_fmt(trial["params"].get(name)) for name in params], _fmt(trial["value"]))  # fmt: skip
    return table


def follow(client: Client, sweep_id: str, poll_s: float = 2.0) -> dict[str, Any]:
    """Redraw the trials table until the sweep ends; returns the final sweep."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    sweep = client.get_sweep(sweep_id)
    with Live(trials_table(sweep, []), console=console, refresh_per_second=2) as live:
        while True:
            sweep = client.get_sweep(sweep_id)
            live.update(trials_table(sweep, client.sweep_trials(sweep_id)["data"]))
            if sweep["status"] != "running":
                break
            time.sleep(poll_s)
    console.line()  # a file or pipe gets the last frame without its newline
    return sweep


def summary(client: Client, sweep: dict[str, Any]) -> None:
    sweep_id = sweep["id"]
    if sweep.get("best_trial") is None:
        typer.echo(f"sweep {sweep_id} {sweep['status']} without a completed trial")
        return
    best = client.sweep_best(sweep_id)
    found = client.sweep_importances(sweep_id)["importances"]
    typer.echo(f"best: trial {best['trial']['number']} {sweep['objective']} {best['trial']['value']:.4f} "
               f"with {json.dumps(best['trial']['params'])}")  # fmt: skip
    typer.echo(f"saved as configuration {best['configuration']['id']}")
    if found:
        typer.echo("importances: " + ", ".join(f"{name} {value:.2f}" for name, value in found.items()))
    typer.echo(f"train it: tunelab sweeps train-best {sweep_id}")


def sweep(
    path: Path = typer.Argument(..., help="Sweep YAML: model, dataset, hyperparameters, search, sampler, n_trials ..."),
    auto: bool = typer.Option(False, "--auto", help="Automated mode: propose the ranges from model and dataset size."),
    no_follow: bool = typer.Option(False, "--no-follow", help="Print the sweep id and return."),
    url: str = UrlOpt,
    token: str = TokenOpt,
) -> None:
    """Start a hyperparameter sweep whose trials are jobs, and follow it in a live table."""
    data = load_sweep_file(path)
    with Client(url, token) as client:
        _upload_if_file(client, data, path.parent)
        if auto:
            keys = ("model", "dataset", "n_trials", "budget_minutes", "hyperparameters", "name", "parallel")
            proposal = client.propose_sweep(**{k: data[k] for k in keys if k in data}, run=True)
            for item in proposal["explanations"]:
                typer.echo(f"{item['field']}: {item['choice']} ({item['reason']})")
            created = proposal["created"]
        else:
            created = client.create_sweep(data)
        typer.echo(f"sweep {created['id']} started")
        if no_follow:
            typer.echo(created["id"])
            return
        summary(client, follow(client, created["id"]))


@sweeps_app.command("list")
def list_(status: str = typer.Option(None, "--status", help="running, completed, failed or cancelled."),
          url: str = UrlOpt, token: str = TokenOpt) -> None:  # fmt: skip
    """List sweeps, newest first."""
    from rich.console import Console
    from rich.table import Table

    with Client(url, token) as client:
        page = client.list_sweeps(status=status)
    table = Table(title=f"{page['count']} sweep(s)")
    for column in ("id", "name", "status", "sampler", "trials", "objective", "best"):
        table.add_column(column)
    for row in page["data"]:
        table.add_row(row["id"], row["name"], row["status"], row["sampler"], str(row["trials"]["total"]),
                      f"{row['direction']} {row['objective']}", _fmt(row["best_value"]))  # fmt: skip
    Console().print(table)


@sweeps_app.command("show")
def show(sweep_id: str, url: str = UrlOpt, token: str = TokenOpt) -> None:
    """A sweep's trials table, best trial and importances."""
    from rich.console import Console

    with Client(url, token) as client:
        found = client.get_sweep(sweep_id)
        Console().print(trials_table(found, client.sweep_trials(sweep_id)["data"]))
        summary(client, found)


@sweeps_app.command("cancel")
def cancel(sweep_id: str, url: str = UrlOpt, token: str = TokenOpt) -> None:
    """Cancel a sweep: no new trials; unfinished trial jobs are cancelled."""
    with Client(url, token) as client:
        typer.echo(f"sweep {client.cancel_sweep(sweep_id)['id']} cancelled")


@sweeps_app.command("best")
def best(sweep_id: str, url: str = UrlOpt, token: str = TokenOpt) -> None:
    """The best trial's configuration as JSON (id, model, dataset, hyperparameters)."""
    with Client(url, token) as client:
        typer.echo(json.dumps(client.sweep_best(sweep_id)["configuration"], indent=2))


@sweeps_app.command("train-best")
def train_best(sweep_id: str, name: str = typer.Option("", "--name", help="Job name."),
               url: str = UrlOpt, token: str = TokenOpt) -> None:  # fmt: skip
    """Queue a job from the sweep's best configuration; prints the job id."""
    with Client(url, token) as client:
        typer.echo(client.train_best(sweep_id, name=name)["id"])


@sweeps_app.command("best-config")
def best_config(model: str = typer.Option(..., "--model", "-m", help="Model id."),
                dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset version id or name."),
                url: str = UrlOpt, token: str = TokenOpt) -> None:  # fmt: skip
    """The best configuration for a model and dataset, from completed jobs and sweeps."""
    with Client(url, token) as client:
        typer.echo(json.dumps(client.best_configuration_for(model, dataset), indent=2))


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
    app.add_typer(sweeps_app, name="sweeps")
