"""`tunelab models list|info|pull`: browse the catalog, size a training run, fetch weights."""

from __future__ import annotations

import typer

from tunelab.models import (
    MemoryEstimate,
    ModelInfo,
    estimate_memory,
    list_models,
    model_info,
    resolve_model,
)

models_app = typer.Typer(help="Browse, inspect and fetch models.", no_args_is_help=True)


def _millions(count: int | None) -> str:
    return "?" if count is None else f"{count / 1e6:,.1f}M"


def _gib(size: int) -> str:
    return f"{size / 1024**3:,.2f}"


def _render_list(models: list[ModelInfo]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Models")
    for column in ("id", "source", "parameters", "architecture", "context", "chat", "on disk"):
        table.add_column(column)
    for info in models:
        table.add_row(
            info.id,
            info.source.value,
            _millions(info.parameters),
            info.architecture or "?",
            str(info.context_length or "?"),
            "yes" if info.chat_template else "no",
            "yes" if info.path else "no (converted/downloaded on first use)",
        )
    Console().print(table)


def _render_info(info: ModelInfo, estimates: list[MemoryEstimate]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    facts = Table(show_header=False, title=info.id)
    rows = {
        "source": info.source.value,
        "parameters": f"{info.parameters:,}" if info.parameters else "?",
        "architecture": info.architecture or "?",
        "context length": str(info.context_length or "?"),
        "chat template": "yes" if info.chat_template else "no",
        "licence": info.licence or "unknown",
        "stored dtype": info.dtype or "?",
        "hub id": info.hub_id or "-",
        "path": info.path or "not on disk yet (`tunelab models pull`)",
    }
    for key, value in rows.items():
        facts.add_row(key, value)
    console.print(facts)
    first = estimates[0]
    memory = Table(
        title=f"Training memory estimate (GiB), batch {first.batch_size} x {first.max_length} "
        f"tokens, {first.precision}"
    )
    for column in ("method", "trainable", "weights", "grads", "optimizer", "activations", "total"):
        memory.add_column(column, justify="right")
    for estimate in estimates:
        memory.add_row(
            estimate.method,
            _millions(estimate.trainable_parameters),
            _gib(estimate.weights_bytes),
            _gib(estimate.gradients_bytes),
            _gib(estimate.optimizer_bytes),
            _gib(estimate.activations_bytes),
            _gib(estimate.total_bytes),
        )
    console.print(memory)
    console.print("Rough formula (see docs/models.md); QLoRA needs a CUDA GPU and bitsandbytes.")


@models_app.command("list")
def list_command(
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List built-in models and Hub models pulled into the tunelab home."""
    models = list_models()
    if json_output:
        typer.echo("[" + ",".join(info.model_dump_json() for info in models) + "]")
    else:
        _render_list(models)


@models_app.command("info")
def info_command(
    model: str = typer.Argument(..., help="Built-in id, local model folder or Hub id."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, max=1024, help="Sequences per step."),
    max_length: int = typer.Option(512, "--max-length", min=1, help="Tokens per sequence."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, bf16 or fp16."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show size, architecture, context length, chat template and a memory estimate."""
    info = model_info(model)
    estimates = [
        estimate_memory(info, method, batch_size, max_length, precision)  # type: ignore[arg-type]
        for method in ("full", "lora", "qlora")
    ]
    if json_output:
        body = {"model": info.model_dump(mode="json"), "memory": [e.model_dump() for e in estimates]}
        import json

        typer.echo(json.dumps(body, indent=2))
    else:
        _render_info(info, estimates)


@models_app.command("pull")
def pull_command(
    model: str = typer.Argument(..., help="Built-in id (converted once) or Hub id (downloaded)."),
) -> None:
    """Make a model available offline: convert a built-in, or download a Hub model."""
    path = resolve_model(model, progress=True)
    typer.echo(f"{model} is ready at {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
