"""`tunelab models list|info|pull`: browse the catalog, size a training run, fetch weights.

``info``'s memory estimate is the method registry's (``methods.estimate_methods``),
the number preflight checks and ``GET /api/models/info`` shows; every setting
not given on the command line is TrainConfig's default.
"""

from __future__ import annotations

from typing import get_args

import typer

from tunelab.errors import TunelabError
from tunelab.models import MemoryEstimate, ModelInfo, list_models, model_info, resolve_model
from tunelab.models.precision import RequestedPrecision
from tunelab.training import methods
from tunelab.training.config import TrainConfig

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


def _default(name: str) -> object:
    return TrainConfig.model_fields[name].default


def _render_info(info: ModelInfo, estimates: dict[str, MemoryEstimate | TunelabError]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    facts = Table(show_header=False, title=info.id)
    rows = {
        "source": info.source.value,
        "parameters": f"{info.parameters:,}" if info.parameters else "?",
        "architecture": info.architecture or "?",
        "family (task)": info.task,
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
    first = next((e for e in estimates.values() if isinstance(e, MemoryEstimate)), None)
    shape = f", batch {first.batch_size} x {first.max_length} tokens" if first else ""
    memory = Table(title=f"Training memory estimate (GiB){shape}")
    for column in ("method", "precision", "trainable", "weights", "grads", "optimizer", "activations", "total"):
        memory.add_column(column, justify="right")
    notes: list[str] = []
    for method, estimate in estimates.items():
        if isinstance(estimate, TunelabError):
            memory.add_row(method, *["-"] * 7)
            notes.append(f"{method}: {estimate.message}")
            continue
        memory.add_row(
            estimate.method,
            estimate.precision,
            _millions(estimate.trainable_parameters),
            _gib(estimate.weights_bytes),
            _gib(estimate.gradients_bytes),
            _gib(estimate.optimizer_bytes),
            _gib(estimate.activations_bytes),
            _gib(estimate.total_bytes),
        )
    console.print(memory)
    for line in notes:
        console.print(line, markup=False)
    needs_cuda = ", ".join(s.name for s in methods.METHODS.values() if s.needs_cuda)
    console.print(f"Rough formula (see docs/models.md); {needs_cuda} needs a CUDA GPU and bitsandbytes.")


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
    batch_size: int = typer.Option(_default("batch_size"), "--batch-size", help="Sequences per step."),
    max_length: int = typer.Option(_default("max_length"), "--max-length", help="Tokens per sequence."),
    precision: str = typer.Option(
        _default("precision"), "--precision", help=f"One of {', '.join(get_args(RequestedPrecision))}."
    ),
    gradient_checkpointing: bool = typer.Option(
        _default("gradient_checkpointing"), "--gradient-checkpointing", help="Recompute activations."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show size, architecture, context length, chat template and a memory estimate per method."""
    fields = {"batch_size": batch_size, "max_length": max_length, "precision": precision,
              "gradient_checkpointing": gradient_checkpointing}  # fmt: skip
    methods.sizing_config(str(_default("method")), **fields)  # a bad range fails once, not per method
    info = model_info(model)
    estimates = methods.estimate_methods(info, **fields)
    if json_output:
        memory = [
            {"method": name, "error": e.to_dict()} if isinstance(e, TunelabError) else e.model_dump()
            for name, e in estimates.items()
        ]
        body = {"model": info.model_dump(mode="json"), "memory": memory}
        import json

        typer.echo(json.dumps(body, indent=2))
    else:
        _render_info(info, estimates)


@models_app.command("search")
def search_command(
    query: str = typer.Argument("", help="Words in the model id or name; empty lists the most downloaded."),
    limit: int = typer.Option(20, "--limit", min=1, max=100, help="Most results to show."),
    category: str | None = typer.Option(None, "--category", help="Only this category (see GET /api/meta)."),
    provider: str | None = typer.Option(None, "--provider", help="Only this provider, e.g. Meta."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Search the Hugging Face Hub (when online) and the local catalog, most downloaded first."""
    from rich.console import Console
    from rich.table import Table

    from tunelab.models.hub import search_models

    console = Console()
    found = search_models(query or None, limit=limit, category=category, provider=provider)
    if json_output:
        typer.echo(found.model_dump_json(indent=2))
        return
    table = Table("id", "category", "parameters", "downloads", "likes", "source")
    for row in found.data:
        downloads = "" if row.downloads is None else f"{row.downloads:,}"
        likes = "" if row.likes is None else f"{row.likes:,}"
        table.add_row(row.id, row.category, row.parameters or "", downloads, likes, row.source)
    console.print(table)
    if not found.hub.reached:
        console.print(f"Hub not reached ({found.hub.reason}); showing local models only.")


@models_app.command("pull")
def pull_command(
    model: str = typer.Argument(..., help="Built-in id (converted once) or Hub id (downloaded)."),
) -> None:
    """Make a model available offline: convert a built-in, or download a Hub model."""
    path = resolve_model(model, progress=True)
    typer.echo(f"{model} is ready at {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
