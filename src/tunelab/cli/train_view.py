"""Terminal view of a training run: progress bar, event lines, summary tables."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

_SHOWN_EVENTS = {"truncation", "warning", "checkpoint_saved", "resumed", "paused", "early_stopped", "eval", "data"}


class RichReporter:
    """A Reporter drawing a progress bar: step, loss, tokens/s and ETA."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} tok/s"),
            TextColumn("ETA {task.fields[eta]}"), TimeElapsedColumn(), console=console,
        )
        self.task: Any = None

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_event(self, event: dict[str, Any]) -> None:
        kind, data = event["type"], event.get("data") or {}
        if kind == "started":
            self.task = self.progress.add_task("train", total=data.get("total_steps"), loss="-", speed="-", eta="-")
        elif kind == "resumed" and self.task is None:
            self.console.print(f"[cyan]{event['message']}[/cyan]")
        elif kind in _SHOWN_EVENTS:
            style = "yellow" if kind in ("truncation", "warning", "paused", "early_stopped") else "dim"
            self.console.print(f"[{style}]{kind}: {event['message']}[/{style}]")
        elif kind == "failed":
            self.console.print(f"[red]failed: {event['message']}[/red]")

    def on_metrics(self, metrics: dict[str, Any]) -> None:
        if self.task is None or metrics.get("type") != "train":
            return
        eta = metrics.get("eta_s") or 0
        self.progress.update(
            self.task, completed=metrics["step"], loss=f"{metrics['loss']:.4f}",
            speed=f"{metrics['tokens_per_second']:.0f}", eta=f"{int(eta) // 60}:{int(eta) % 60:02d}",
        )


def print_issues(console: Console, issues: list[Any]) -> None:
    for issue in issues:
        color = "red" if issue.level == "error" else "yellow"
        console.print(f"[{color}]{issue.level}[/{color}] [{issue.code}] {issue.message}  [dim]{issue.hint}[/dim]")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return "-" if value is None else str(value)


def print_result(console: Console, result: Any) -> None:
    """The final summary table and the side-by-side generations."""
    if result.status == "stopped":
        console.print(f"[yellow]Stopped at step {result.global_step}; a checkpoint was saved.[/yellow] "
                      f"Resume with: tunelab train CONFIG --run-dir {result.run_dir}")
        return
    s = result.summary
    table = Table(title="Training summary", show_header=False)
    for key, value in (("method", s["method"]), ("steps", s["steps"]), ("epochs", s["epochs"]),
                       ("final train loss", s["final_loss"]), ("tokens seen", s["tokens_seen"]),
                       ("tokens/s", s["tokens_per_second"]), ("train time (s)", s["train_seconds"]),
                       ("trainable params", s["parameters"]["trainable"]), ("output", result.output_dir)):
        table.add_row(key, _fmt(value))
    evaluation = result.evaluation or {}
    for side in ("base", "tuned"):
        found = evaluation.get(side)
        if found and "perplexity" in found:
            table.add_row(f"{side} eval loss / ppl", f"{_fmt(found['eval_loss'])} / {_fmt(found['perplexity'])}")
        elif found:  # a classifier or regressor: its task's metrics (training/tasks.py)
            table.add_row(f"{side} eval loss", _fmt(found["eval_loss"]))
        for metric in ("exact_match", "accuracy", "macro_f1", "mae", "rmse"):
            if found and found.get(metric) is not None:
                table.add_row(f"{side} {metric.replace('_', ' ')}", _fmt(found[metric]))
    console.print(table)
    if evaluation.get("samples"):
        gens = Table(title="Base vs tuned", show_lines=True)
        for column in ("prompt", "base", "tuned"):
            gens.add_column(column, overflow="fold")
        for row in evaluation["samples"]:
            gens.add_row(row["prompt"][:300], _fmt(row["base"])[:300], _fmt(row["tuned"])[:300])
        console.print(gens)
    if s.get("task") in ("classification", "regression"):
        console.print(f"Classify with it: [bold]tunelab classify {result.output_dir} \"some text\"[/bold]")
        return
    console.print(f"Chat with it: [bold]tunelab chat {result.output_dir}[/bold]")
