"""`tunelab export SOURCE -o OUT [--format F]` and `tunelab export script JOB|CONFIG -o FILE`.

``tunelab export SOURCE -o OUT`` (the README's form) stays the model export;
``ExportGroup`` routes any first argument that is not a sub-command name to
``tunelab export model``, so ``script`` can sit beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import typer
from typer.core import TyperGroup

from tunelab.client import DEFAULT_URL
from tunelab.errors import InvalidInput


class ExportGroup(TyperGroup):
    """A group whose unknown first word is the SOURCE of its default command, ``model``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["model", *args]
        return super().parse_args(ctx, args)


export_app = typer.Typer(cls=ExportGroup, no_args_is_help=True,
                         help="Export a model (merged, adapter, GGUF, ONNX) or a standalone training script.")  # fmt: skip


def _size(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


@export_app.command("model")
def export_model(
    source: str = typer.Argument(..., help="Run directory, its output/ folder, an adapter folder or a model."),
    out: Path = typer.Option(..., "--out", "-o", help="New folder for the export (must not exist or be empty)."),
    fmt: str = typer.Option("merged", "--format", "-f", help="merged, adapter, gguf, gguf-q8_0, gguf-adapter, onnx."),
    dtype: str = typer.Option("auto", "--dtype", help="merged only: auto (the base model's own), fp32, bf16, fp16."),
    push: str = typer.Option("", "--push-to-hub", help="Also upload the export to this Hub repo (user/name)."),
    public: bool = typer.Option(False, "--public", help="With --push-to-hub: make the repo public."),
) -> None:
    """Export SOURCE as FORMAT into a new folder, with a model card (written atomically)."""
    from tunelab.export.exporter import export_model as run_export
    from tunelab.export.hub import push_to_hub, validate_repo_id

    if push:
        validate_repo_id(push)  # before minutes of conversion, not after
    folder = run_export(source, out, fmt=fmt, dtype=dtype)
    typer.echo(f"{fmt} export written to {folder} ({_size(folder):.1f} MB)")
    for file in sorted(p.name for p in folder.iterdir()):
        typer.echo(f"  {file}")
    if fmt == "merged":
        typer.echo(f"load it with transformers: AutoModelForCausalLM.from_pretrained({str(folder)!r})")
    else:
        typer.echo(f"how to run it: {folder / 'README.md'}")
    if push:
        typer.echo(f"pushed to {push_to_hub(folder, push, private=not public)}")


def _local_config(source: Path) -> Any:
    from tunelab.cli.train import load_train_config
    from tunelab.training.config import load_config_dict

    if source.is_dir():
        config = source / "config.json"
        if not config.is_file():
            raise InvalidInput(f"{source} is not a tunelab run directory (no config.json)",
                               "name a run directory, a YAML/JSON config file or a job id")  # fmt: skip
        return load_config_dict(json.loads(config.read_text()))
    return load_train_config(source, [])


@export_app.command("script")
def export_script(
    source: str = typer.Argument(..., help="A job id, a run directory or a YAML/JSON training config."),
    out: Path = typer.Option(..., "--out", "-o", help="The Python file to write (must not exist)."),
    framework: str = typer.Option("transformers", "--framework", help="transformers (its own loop) or trl (SFTTrainer, TRL 0.24)."),
    output_dir: str = typer.Option("output", "--output-dir", help="Where the script saves the trained model."),
    url: str = typer.Option(DEFAULT_URL, "--url", envvar="TUNELAB_URL", help="Server URL, for a job id."),
    token: str = typer.Option("", "--token", envvar="TUNELAB_TOKEN", help="API token, for a job id."),
) -> None:
    """Write one editable Python file (transformers + peft, or TRL) that reproduces a job."""
    from tunelab.client import Client
    from tunelab.export.script import render_script

    if out.exists():
        raise InvalidInput(f"{out} already exists", "choose a new file name, or remove that one first",
                           code="export_target_exists")  # fmt: skip
    path = Path(source).expanduser()
    if path.exists():
        text = render_script(_local_config(path), framework=framework, output_dir=output_dir, file_name=out.name)
    else:
        with Client(url, token or None) as client:
            text = client.export_script(source, framework=framework, output_dir=output_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    typer.echo(f"training script written to {out} ({len(text.splitlines())} lines); run it with: python {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
