"""``tunelab estimate CONFIG.yaml`` and ``tunelab advise``: sizing a run and choosing fine-tuning or RAG.

Thin over ``tunelab.training.estimate`` (the numbers ``POST /api/estimate``
answers) and ``tunelab.training.advisor``. ``--calibrate`` first trains the
config for a few steps on this machine (``training.calibration``) so the CPU
time comes from a measurement; the result is stored and reused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from tunelab.training.calibration import DEFAULT_STEPS

GIB = 1024**3


def _load(path: Path, overrides: list[str], batch_size: int | None) -> Any:
    """The YAML config with overrides; the dataset may be missing (an estimate reads no data)."""
    from tunelab.cli.train import read_config_file
    from tunelab.training import methods
    from tunelab.training.config import load_config_dict

    data = read_config_file(path, overrides)
    if batch_size is not None:
        data["batch_size"] = batch_size
    return load_config_dict({**data, "dataset": data.get("dataset") or methods.SIZING_DATASET})


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GIB:,.2f}"


def _hours(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value * 60:,.1f} min" if value < 1 else f"{value:,.1f} h"


def _money(value: float | None, currency: str) -> str:
    return "?" if value is None else f"{value:,.2f} {currency}"


def _render(found: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    memory = found.memory
    console.print(
        f"{found.model}: {found.parameters / 1e6:,.1f}M parameters, method {found.method} trains "
        f"{found.trainable_parameters / 1e6:,.2f}M, {memory.precision}, batch {memory.batch_size} x "
        f"{memory.max_length} tokens", markup=False,
    )  # fmt: skip
    split = Table(title="Memory on this machine (GiB)")
    labels = ("weights", "gradients", "optimizer", "activations", "  with checkpointing",
              "  without checkpointing", "overhead", "loading", "total")  # fmt: skip
    values = (memory.weights_bytes, memory.gradients_bytes, memory.optimizer_bytes, memory.activations_bytes,
              memory.activations_with_checkpointing_bytes, memory.activations_without_checkpointing_bytes,
              memory.overhead_bytes, memory.loading_bytes, memory.total_bytes)  # fmt: skip
    for column in labels:
        split.add_column(column.strip(), justify="right")
    split.add_row(*(_gib(value) for value in values))
    console.print(split)
    devices = Table(title=f"Devices ({found.total_tokens or '?'} tokens, {found.steps or '?'} steps)")
    for column in ("device", "precision", "memory", "needs", "fits", "max batch", "accum", "tokens/s",
                   "time", "on demand", "spot"):  # fmt: skip
        devices.add_column(column, justify="left" if column == "device" else "right")
    for device in found.devices:
        devices.add_row(
            device.name, device.precision, _gib(device.memory_bytes), _gib(device.needed_bytes),
            "yes" if device.fits else "no", str(device.largest_batch_size), str(device.gradient_accumulation_steps),
            "?" if device.tokens_per_second is None else f"{device.tokens_per_second:,.0f}",
            _hours(device.hours), _money(device.cost_on_demand, found.currency) if not device.own else "-",
            _money(device.cost_spot, found.currency) if not device.own else "-",
        )  # fmt: skip
    console.print(devices)
    if found.cheapest is not None:
        best = found.cheapest
        console.print(
            f"Cheapest within {found.budget:g} {found.currency}: {best.device} ({best.pricing}), batch "
            f"{best.batch_size} x {best.gradient_accumulation_steps} accumulation, gradient checkpointing "
            f"{'on' if best.gradient_checkpointing else 'off'}: {_hours(best.hours)}, "
            f"{_money(best.cost, found.currency)} ({best.considered} configurations compared)", markup=False,
        )  # fmt: skip
    cpu = next((d for d in found.devices if d.own and d.kind == "cpu"), None)
    if cpu is not None:
        console.print(f"This machine's throughput: {cpu.throughput_source}.", markup=False)
    for note in found.notes:
        console.print(note, markup=False)


def estimate_command(
    config_file: Path = typer.Argument(..., help="Training config (YAML); the dataset may be left out."),
    overrides: list[str] = typer.Argument(None, help="Field overrides, e.g. method=qlora max_length=2048."),
    batch_size: int = typer.Option(None, "--batch-size", help="Sequences per micro-batch (overrides the config)."),
    rows: int = typer.Option(None, "--rows", min=1, help="Training rows, for time and cost without max_steps."),
    tokens_per_row: int = typer.Option(None, "--tokens-per-row", min=1, help="Mean tokens per row (default max_length)."),
    budget: float = typer.Option(None, "--budget", help="Most you would pay: finds the cheapest GPU setup."),
    calibrate: bool = typer.Option(False, "--calibrate", help="First measure throughput here with a short run."),
    steps: int = typer.Option(DEFAULT_STEPS, "--calibration-steps", min=2, max=100, help="Steps of the calibration run."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Memory split, devices it fits, largest batch, time and cost of a config; nothing is trained."""
    from tunelab.models import model_info
    from tunelab.training import calibration
    from tunelab.training.estimate import estimate

    config = _load(config_file, overrides or [], batch_size)
    info = model_info(config.model)
    if calibrate:
        typer.echo(f"Calibrating: {steps} steps of {config.method} on {config.model} ...", err=True)
        entry = calibration.calibrate(config, info, steps=steps)
        typer.echo(f"Measured {entry['tokens_per_second']:,.0f} tokens/s; stored in "
                   f"{calibration.calibration_path()}", err=True)  # fmt: skip
    found = estimate(config, info, rows=rows, tokens_per_row=tokens_per_row, budget=budget)
    if json_output:
        typer.echo(found.model_dump_json(indent=2))
    else:
        _render(found)


def advise_command(
    data_volume: str = typer.Option("small", "--data-volume", help="small (<1k), medium (1k-10k) or large (>10k)."),
    examples: int = typer.Option(None, "--examples", min=0, help="Number of examples (decides --data-volume)."),
    knowledge_type: str = typer.Option("factual", "--knowledge-type", help="behavioral (style, format) or factual."),
    update_frequency: str = typer.Option("rare", "--update-frequency", help="rare or frequent."),
    budget: str = typer.Option("medium", "--budget", help="limited, medium or high."),
    latency_sensitive: bool = typer.Option(False, "--latency-sensitive", help="Answers must come fast."),
    accuracy_critical: bool = typer.Option(False, "--accuracy-critical", help="Answers must be grounded."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Fine-tuning or RAG? The lesson's decision framework: both scores, confidence, hybrid, reasons."""
    from pydantic import ValidationError

    from tunelab.errors import InvalidInput
    from tunelab.training.advisor import AdviceRequest, advise

    fields = {"data_volume": data_volume, "examples": examples, "knowledge_type": knowledge_type,
              "update_frequency": update_frequency, "budget": budget, "latency_sensitive": latency_sensitive,
              "accuracy_critical": accuracy_critical}  # fmt: skip
    try:
        request = AdviceRequest(**fields)
    except ValidationError as exc:
        wrong = "; ".join(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"Invalid advisor input: {wrong}", hint="See `tunelab advise --help`.") from None
    advice = advise(request)
    if json_output:
        typer.echo(json.dumps(advice.model_dump(mode="json"), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    table = Table(title="Fine-tuning or RAG?")
    for column in ("factor", "to", "points", "why"):
        table.add_column(column)
    for reason in advice.reasons:
        table.add_row(reason.factor, reason.side, str(reason.points), reason.why)
    console.print(table)
    console.print(
        f"Recommendation: {advice.recommendation} (fine-tuning {advice.fine_tuning_score}, RAG "
        f"{advice.rag_score}, confidence {advice.confidence:.2f}); hybrid "
        f"{'feasible' if advice.hybrid_feasible else 'not indicated'}.", markup=False,
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("estimate")(estimate_command)
    app.command("advise")(advise_command)
