"""`tunelab export SOURCE -o OUT`: a run's adapter merged into full weights, ready to share or serve."""

from __future__ import annotations

from pathlib import Path

import typer


def export(
    source: str = typer.Argument(..., help="Run directory, its output/ folder, an adapter folder or a model."),
    out: Path = typer.Option(..., "--out", "-o", help="New folder for the merged model (must not exist or be empty)."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (the base model's own), fp32, bf16 or fp16."),
) -> None:
    """Merge an adapter into its base model and save plain full weights."""
    from tunelab.export.merged import export_merged

    folder = export_merged(source, out, dtype=dtype)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    typer.echo(f"merged model written to {folder} ({size / 1e6:.0f} MB)")
    typer.echo(f"load it with transformers: AutoModelForCausalLM.from_pretrained({str(folder)!r})")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
