"""``tunelab monitor JOB|RUN_DIR|LOGFILE``: a live terminal dashboard of one training run.

Three sources, one picture (progress, loss and learning-rate sparklines, the
latest throughput and health figures, recent events, CPU/RAM/GPU bars):

- a job id: read through the SDK (job, metrics, events, the worker's latest
  resource sample), so it works against a remote studio;
- a run directory: its ``metrics.jsonl``, ``events.jsonl`` and ``config.json``,
  resources sampled on this machine (where such a run usually trains);
- a metrics file (``metrics.jsonl`` lines): only the metrics.

``--once`` prints one frame and exits (scripts and tests); otherwise it redraws
every ``--interval`` seconds until the run ends or Ctrl-C.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from tunelab.client import DEFAULT_URL, Client
from tunelab.errors import InvalidInput

BLOCKS = "▁▂▃▄▅▆▇█"
TERMINAL = ("completed", "failed", "cancelled", "paused", "invalid")
_END_EVENTS = {"completed": "completed", "failed": "failed", "paused": "paused"}


@dataclass
class Snapshot:
    """Everything one frame shows, whatever the source."""

    title: str
    source: str
    status: str = "running"
    total_steps: int | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)  # train lines, oldest first
    evals: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # {type, message}
    resources: dict[str, Any] | None = None
    resources_label: str = ""


def sparkline(values: list[float], width: int = 48) -> str:
    """Unicode block sparkline of the last ``width`` values (averaged into buckets when longer)."""
    points = [v for v in values if isinstance(v, int | float) and v == v and abs(v) != float("inf")]
    if not points:
        return ""
    if len(points) > width:
        size = len(points) / width
        points = [sum(chunk) / len(chunk) for i in range(width)
                  if (chunk := points[int(i * size):max(int((i + 1) * size), int(i * size) + 1)])]
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    return "".join(BLOCKS[min(len(BLOCKS) - 1, int((v - low) / span * (len(BLOCKS) - 1) + 0.5))] for v in points)


def bar(percent: float | None, width: int = 24) -> str:
    """A text bar for ``percent`` (0-100); blank for unknown."""
    if percent is None:
        return "·" * width + "   n/a"
    filled = max(0, min(width, round(width * percent / 100)))
    return "█" * filled + "░" * (width - filled) + f" {percent:5.1f}%"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            rows.append(value)
    return rows


def _split(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train = [m for m in lines if m.get("type", "train") == "train" and "loss" in m]
    evals = [m for m in lines if m.get("type") == "eval" or m.get("eval_loss") is not None]
    return train, evals


_primed = False


def _local_resources() -> dict[str, Any]:
    """A sample of this machine; the first one waits a moment, since CPU % is a rate."""
    global _primed
    import psutil

    from tunelab.monitor.resources import sample_resources

    if not _primed:
        psutil.cpu_percent(interval=None)
        time.sleep(0.3)
        _primed = True
    return sample_resources(Path.cwd())


def from_logfile(path: Path) -> Snapshot:
    train, evals = _split(_read_jsonl(path))
    status = "running"
    if train and train[-1].get("eta_s") == 0:
        status = "finished"
    return Snapshot(title=path.name, source=f"metrics file {path}", status=status, metrics=train, evals=evals,
                    resources=_local_resources(), resources_label="this machine")


def from_run_dir(path: Path) -> Snapshot:
    train, evals = _split(_read_jsonl(path / "metrics.jsonl"))
    events = _read_jsonl(path / "events.jsonl")
    total, status, name = None, "running" if events else "not started", path.name
    try:
        config = json.loads((path / "config.json").read_text())
        name = config.get("name") or name
        total = (config.get("engine") or {}).get("total_steps") or config.get("max_steps")
    except (OSError, ValueError, AttributeError):
        pass
    for event in events:
        data = event.get("data") or {}
        if event.get("type") in ("started", "stopped_early") and isinstance(data.get("total_steps"), int):
            total = data["total_steps"]
        if event.get("type") in _END_EVENTS:
            status = _END_EVENTS[event["type"]]
        elif event.get("type") in ("started", "resumed"):
            status = "running"
    shown = [{"type": e.get("type", ""), "message": e.get("message", "")} for e in events]
    return Snapshot(title=name, source=f"run directory {path}", status=status, total_steps=total,
                    metrics=train, evals=evals, events=shown, resources=_local_resources(),
                    resources_label="this machine")


def from_job(client: Client, job_id: str) -> Snapshot:
    job = client.get_job(job_id)
    rows = [{**(row.get("data") or {}), **{k: v for k, v in row.items() if k != "data" and v is not None}}
            for row in client.job_metrics(job_id)["data"]]
    train, evals = _split([{"type": "train", **r} if r.get("loss") is not None else {"type": "eval", **r}
                           for r in rows])
    page = client.job_events(job_id, limit=1000, types=["event", "status", "resources"])["data"]
    events, resources, total = [], None, None
    for event in page:
        data = event.get("data") or {}
        if event["type"] == "resources":
            resources = data
        elif event["type"] == "status":
            events.append({"type": "status", "message": f"{data.get('previous') or '–'} → {data.get('status')}"})
        else:
            if data.get("type") in ("started", "stopped_early") and isinstance((data.get("data") or {}).get("total_steps"), int):
                total = data["data"]["total_steps"]
            events.append({"type": str(data.get("type", "event")), "message": str(data.get("message", ""))})
    label = "worker's last sample"
    if resources is None:
        resources, label = client.resources(), "server now"
    return Snapshot(title=job.get("name") or job["id"], source=f"job {job['id']} at {client.base_url}",
                    status=job["status"], total_steps=total, metrics=train, evals=evals, events=events,
                    resources=resources, resources_label=label)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def render(snap: Snapshot) -> Any:
    """The frame as a rich renderable."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    last = snap.metrics[-1] if snap.metrics else {}
    step = last.get("step", 0)
    progress = None
    if snap.total_steps:
        progress = min(1.0, step / snap.total_steps)
    elif isinstance(last.get("eta_s"), int | float) and isinstance(last.get("elapsed_s"), int | float):
        spent = last["elapsed_s"] + last["eta_s"]
        progress = last["elapsed_s"] / spent if spent else 1.0
    head = Text()
    head.append(f"{snap.title}", style="bold")
    head.append(f"  [{snap.status}]  ", style="cyan")
    head.append(f"step {step}" + (f" / {snap.total_steps}" if snap.total_steps else ""))
    if progress is not None:
        head.append(f"  {bar(progress * 100, 30)}")
    if isinstance(last.get("eta_s"), int | float) and snap.status == "running":
        head.append(f"  ETA {int(last['eta_s'])} s")

    figures = Table.grid(padding=(0, 2))
    figures.add_column(style="dim")
    figures.add_column()
    losses = [m.get("loss") for m in snap.metrics]
    rates = [m.get("learning_rate") for m in snap.metrics]
    figures.add_row("loss", f"{_fmt(last.get('loss'))}  {sparkline(losses)}")
    figures.add_row("learning rate", f"{_fmt(last.get('learning_rate'), 3)}  {sparkline(rates)}")
    if snap.evals:
        figures.add_row("eval loss", _fmt(snap.evals[-1].get("eval_loss")))
    figures.add_row("grad norm", _fmt(last.get("grad_norm")))
    speed = f"{_fmt(last.get('tokens_per_second'), 4)} tok/s · {_fmt(last.get('samples_per_second'), 3)} samples/s"
    figures.add_row("throughput", speed)
    mfu = last.get("mfu")
    figures.add_row("MFU", f"{mfu:.1%}" if isinstance(mfu, int | float) else "– (peak unknown)")
    if last.get("update_ratio") is not None:
        figures.add_row("update/weight", _fmt(last.get("update_ratio"), 3))

    res = Table.grid(padding=(0, 2))
    res.add_column(style="dim")
    res.add_column()
    r = snap.resources or {}
    res.add_row("CPU", bar(r.get("cpu_percent")) + (f"  {r['cpu_count']} cores" if r.get("cpu_count") else ""))
    res.add_row("RAM", bar(r.get("ram_percent")))
    for gpu in r.get("gpus") or []:
        res.add_row(f"GPU {gpu.get('index', '')}", bar(gpu.get("utilization_percent")) + f"  {gpu.get('name', '')}")
        res.add_row(f"GPU {gpu.get('index', '')} mem", bar(gpu.get("memory_percent")))
    if not r.get("gpus"):
        res.add_row("GPU", "none")

    events = Text(end="")
    for index, event in enumerate(snap.events[-6:]):
        if index:
            events.append("\n")
        style = "yellow" if event["type"] in ("diagnosis", "warning") else "red" if event["type"] == "failed" else ""
        events.append(f"{event['type']:<23} ", style=style or "dim")
        events.append(event["message"][:110], style=style)
    parts = [head, Panel(figures, title="training"),
             Panel(res, title=f"resources ({snap.resources_label})" if snap.resources_label else "resources")]
    if snap.events:
        parts.append(Panel(events, title="events"))
    return Panel(Group(*parts), title=f"tunelab monitor · {snap.source}", border_style="blue")


def monitor_command(
    target: str = typer.Argument(..., help="A job id, a run directory, or a metrics.jsonl file."),
    once: bool = typer.Option(False, "--once", help="Print one frame and exit."),
    interval: float = typer.Option(2.0, "--interval", min=0.2, help="Seconds between refreshes."),
    url: str = typer.Option(DEFAULT_URL, "--url", envvar="TUNELAB_URL", help="Studio URL (for a job id)."),
    token: str = typer.Option(None, "--token", envvar="TUNELAB_TOKEN", help="API token (for a job id)."),
) -> None:
    """Live terminal dashboard of a run: progress, loss and learning-rate sparklines, CPU/RAM/GPU."""
    from rich.console import Console
    from rich.live import Live

    path = Path(target)
    client: Client | None = None
    if path.is_dir():
        def read() -> Snapshot:
            return from_run_dir(path)
    elif path.is_file():
        def read() -> Snapshot:
            return from_logfile(path)
    elif "/" in target or target.endswith(".jsonl"):
        raise InvalidInput(f"{target} is neither a run directory nor a metrics file",
                           "pass a job id, a run directory or a metrics.jsonl path")
    else:
        client = Client(url, token)

        def read() -> Snapshot:
            assert client is not None
            return from_job(client, target)

    console = Console()
    try:
        if once:
            console.print(render(read()))
            return
        with Live(render(read()), console=console, refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(interval)
                snap = read()
                live.update(render(snap))
                if snap.status in TERMINAL:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        if client is not None:
            client.close()


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor_command)
