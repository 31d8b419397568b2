"""`tunelab jobs ...`: create, list, show, follow and control jobs on a (remote) studio.

Every command goes through the SDK (``tunelab.client.Client``) against
``--url`` (env ``TUNELAB_URL``, default http://127.0.0.1:8420) with ``--token``
(env ``TUNELAB_TOKEN``), so it works the same on the server and on a laptop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from tunelab.client import DEFAULT_URL, Client
from tunelab.errors import InvalidInput

jobs_app = typer.Typer(help="Create, follow and control training jobs (via the API).", no_args_is_help=True)

UrlOpt = typer.Option(DEFAULT_URL, "--url", envvar="TUNELAB_URL", help="Studio URL.")
TokenOpt = typer.Option(None, "--token", envvar="TUNELAB_TOKEN", help="API token.")


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (values as JSON when they parse, dotted keys nest)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--set {pair!r} is not key=value", "e.g. --set max_steps=20 --set lora.r=8")
        target = out
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = _parse_value(value)
    return out


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@jobs_app.command("create")
def create(
    model: str = typer.Option("smollm2-135m-instruct", "--model", "-m", help="Model id or server-side folder."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset id/name/version, or a local file to upload."),
    set_: list[str] = typer.Option([], "--set", help="Hyperparameter key=value (repeatable)."),
    config: Path = typer.Option(None, "--config", help="JSON/YAML file of hyperparameters."),
    name: str = typer.Option("", "--name", help="Job name."),
    tag: list[str] = typer.Option([], "--tag", help="Tag (repeatable)."),
    priority: str = typer.Option("medium", "--priority", help="high, medium or low."),
    timeout: float = typer.Option(None, "--timeout", help="Wall-clock limit in seconds."),
    model_name: str = typer.Option(None, "--model-name", help="Name for the saved model."),
    provider: str = typer.Option("local", "--provider", help="Where it trains: local, or a provider from "
                                 "`tunelab providers`."),
    url: str = UrlOpt,
    token: str = TokenOpt,
) -> None:
    """Create and queue a job; prints its id."""
    hyper: dict[str, Any] = {}
    if config is not None:
        import yaml

        hyper = yaml.safe_load(config.read_text()) or {}
    hyper |= parse_settings(set_)
    with Client(url, token) as client:
        if Path(dataset).is_file():
            uploaded = client.upload_dataset(dataset)
            dataset = uploaded["version"]["id"]
            typer.echo(f"uploaded {uploaded['name']} as version {dataset}", err=True)
        job = client.create_job(model, dataset, hyper, name=name, tags=tag, priority=priority,
                                timeout_s=timeout, save={"model_name": model_name}, provider=provider)  # fmt: skip
    typer.echo(job["id"])


@jobs_app.command("list")
def list_(
    status: list[str] = typer.Option([], "--status", help="Filter by status (repeatable)."),
    tag: str = typer.Option(None, "--tag", help="Only jobs with this tag."),
    limit: int = typer.Option(50, "--limit", help="Page size."),
    url: str = UrlOpt,
    token: str = TokenOpt,
) -> None:
    """List jobs, newest first."""
    from rich.console import Console
    from rich.table import Table

    with Client(url, token) as client:
        page = client.list_jobs(status=status or None, tag=tag, limit=limit)
    table = Table(title=f"Jobs ({len(page['data'])} of {page['count']})")
    for column in ("id", "name", "status", "priority", "model", "progress", "created"):
        table.add_column(column, no_wrap=column in ("id", "status"))
    for job in page["data"]:
        progress = f"{job['progress'] * 100:.0f}%" if job.get("progress") is not None else "-"
        table.add_row(job["id"], job.get("name") or "", job["status"], job["priority"],
                      str(job["config"].get("model")), progress, str(job.get("created_at")))  # fmt: skip
    Console().print(table)


@jobs_app.command("show")
def show(job_id: str, url: str = UrlOpt, token: str = TokenOpt) -> None:
    """Show a job with its latest metrics and artifacts."""
    with Client(url, token) as client:
        job = client.get_job(job_id)
        job["latest_metrics"] = client.job_metrics(job_id, last_n=1)["data"]
        job["artifacts"] = client.job_artifacts(job_id)["data"]
    _print_json(job)


def _render(event: dict[str, Any]) -> str:
    data = event.get("data") or {}
    kind = event.get("type")
    if kind == "log":
        return str(data.get("line", data))
    if kind == "metrics":
        shown = {k: v for k, v in data.items() if k in ("step", "loss", "eval_loss", "learning_rate", "progress")}
        return "metrics " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
    if kind == "status":
        return f"status {data.get('previous')} -> {data.get('status')}"
    if kind == "end":
        return f"job ended: {event.get('status')}"
    return f"{kind} {json.dumps(data, default=str)}"


@jobs_app.command("logs")
def logs(
    job_id: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Stream until the job ends."),
    all_: bool = typer.Option(False, "--all", help="Also metrics and resource samples."),
    url: str = UrlOpt,
    token: str = TokenOpt,
) -> None:
    """Print a job's log lines and status changes (with --follow: live)."""
    quiet = set() if all_ else {"metrics", "resources"}
    with Client(url, token) as client:
        if follow:
            for event in client.stream_job(job_id):
                if event.get("type") not in quiet:
                    typer.echo(_render(event))
            return
        after = 0
        while True:
            page = client.job_events(job_id, after=after, limit=1000)
            for event in page["data"]:
                if event["type"] not in quiet:
                    typer.echo(_render(event))
            if len(page["data"]) < 1000:
                return
            after = page["data"][-1]["id"]


def _action(name: str, method: str) -> None:
    def command(job_id: str, url: str = UrlOpt, token: str = TokenOpt) -> None:
        with Client(url, token) as client:
            job = getattr(client, method)(job_id)
        typer.echo(f"{job['id']}: {job['status']}" + (f" ({job['requested_action']} requested)"
                                                       if job.get("requested_action") else ""))  # fmt: skip

    command.__doc__ = {"pause": "Checkpoint and pause a running job.", "resume": "Queue a paused job again.",
                       "cancel": "Cancel a job (a running one is stopped).",
                       "retry": "Run a failed or cancelled job again as a new job."}[name]  # fmt: skip
    jobs_app.command(name)(command)


for _name in ("pause", "resume", "cancel", "retry"):
    _action(_name, f"{_name}_job")


def _requested(answer: dict[str, Any]) -> None:
    request = answer["request"]
    what = request["action"] + (f" {request['value']:g}" if request.get("value") is not None else "")
    typer.echo(f"{answer['job']['id']}: {what} requested (request {request['id']}); the engine applies it "
               f"at its next step and answers with a {request['answer_event']} event")


@jobs_app.command("checkpoint")
def checkpoint(job_id: str, url: str = UrlOpt, token: str = TokenOpt) -> None:
    """Save a checkpoint of a running job now; training goes on."""
    with Client(url, token) as client:
        _requested(client.checkpoint_job(job_id))


@jobs_app.command("set-lr")
def set_lr(
    job_id: str,
    learning_rate: float = typer.Argument(..., help="New learning rate, e.g. 1e-4 (1e-6 to 1e-2)."),
    url: str = UrlOpt,
    token: str = TokenOpt,
) -> None:
    """Change a running job's learning rate from its next step (the schedule continues from it)."""
    with Client(url, token) as client:
        _requested(client.set_learning_rate(job_id, learning_rate))


@jobs_app.command("stop-early")
def stop_early(job_id: str, url: str = UrlOpt, token: str = TokenOpt) -> None:
    """End a running job now with its current weights: output saved, job completed."""
    with Client(url, token) as client:
        _requested(client.stop_early(job_id))


@jobs_app.command("compare")
def compare(
    job_ids: list[str] = typer.Argument(..., help="Two or more job ids."),
    metric: list[str] = typer.Option(["loss", "eval_loss"], "--metric", help="Metric (repeatable)."),
    url: str = UrlOpt,
    token: str = TokenOpt,
) -> None:
    """Compare jobs on final and best values of chosen metrics."""
    from rich.console import Console
    from rich.table import Table

    with Client(url, token) as client:
        result = client.compare_jobs(job_ids, metric)
    table = Table(title="Comparison (final / best)")
    for column in ["job", "status", *result["metrics"]]:
        table.add_column(column, no_wrap=column == "job")
    for job in result["jobs"]:
        cells = [f"{_fmt(job[m]['final'])} / {_fmt(job[m]['best'])}" for m in result["metrics"]]
        table.add_row(job["id"], job["status"], *cells)
    Console().print(table)
    if result.get("differing"):
        differing = Table(title="Hyperparameters that differ")
        for column in ["hyperparameter", *(job["id"] for job in result["jobs"])]:
            differing.add_column(column, no_wrap=column == "hyperparameter")
        for name in result["differing"]:
            differing.add_row(name, *(_fmt(job["hyperparameters"].get(name)) for job in result["jobs"]))
        Console().print(differing)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
