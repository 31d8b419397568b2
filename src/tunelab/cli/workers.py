"""`tunelab workers`: the workers of a studio, what each can run, and what it runs now.

Goes through the SDK (``GET /api/workers``) like ``tunelab jobs``, so it works
from any machine that reaches the API: one row per worker with its GPUs
(name, memory), CPUs and RAM, its last heartbeat, and each running job with
its lease. ``--json`` prints the API's answer as is.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from tunelab.client import DEFAULT_URL, Client


def _job_cell(jobs: list[dict[str, Any]]) -> str:
    """``job-1 (step 5, lease until 12:00:30Z)`` per running job, or ``idle``."""
    if not jobs:
        return "idle"
    return "\n".join(
        f"{job['id']} (step {job.get('step') if job.get('step') is not None else '-'}, lease until "
        f"{str(job.get('lease_expires_at') or '-')[11:20]})"
        for job in jobs
    )


def workers(
    show_all: bool = typer.Option(
        False, "--all", help="Also workers that stopped or stopped answering."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the API's answer as JSON."),
    url: str = typer.Option(DEFAULT_URL, "--url", envvar="TUNELAB_URL", help="Studio URL."),
    token: str = typer.Option(None, "--token", envvar="TUNELAB_TOKEN", help="API token."),
) -> None:
    """List workers: resources (GPUs, CPUs, RAM), heartbeat, running jobs and their leases."""
    from rich.console import Console
    from rich.table import Table

    with Client(url, token) as client:
        data = client.workers()["data"]
    shown = data if show_all else [worker for worker in data if worker["alive"]]
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
        return
    hidden = len(data) - len(shown)
    table = Table(
        title=f"Workers ({len(shown)} live"
        + (f"; {hidden} gone, --all shows them)" if hidden else ")")
    )
    for column in ("worker", "state", "resources", "last heartbeat", "running"):
        table.add_column(column, no_wrap=column in ("worker", "state"))
    for worker in shown:
        state = (
            "live"
            if worker["alive"]
            else ("stopped" if worker.get("stopped_at") else "not answering")
        )
        table.add_row(worker["id"], state, worker["resources"], str(worker.get("heartbeat_at")),
                      _job_cell(worker.get("jobs") or []))  # fmt: skip
    Console(width=max(120, Console().width)).print(table)
    if not shown:
        typer.echo("no live worker: start one with `tunelab worker` (or `tunelab serve`)", err=True)


def register(app: typer.Typer) -> None:
    app.command("workers")(workers)
