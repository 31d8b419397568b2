"""``tunelab train CONFIG.yaml [key=value ...]``: run the engine in the foreground.

Thin over ``tunelab.training``: load YAML, apply overrides, resolve relative
paths from the config file's folder, preflight, then ``run_training`` with a rich
progress bar as its Reporter, and a summary table at the end. Ctrl-C stops like
SIGTERM (checkpoint, exit 75, prints the resume command); a second one aborts (130).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
import typer
from typer.core import HAS_RICH, TyperCommand

from tunelab.errors import ConfigError, PreflightFailed, TunelabError

_PATH_FIELDS = ("dataset", "eval_dataset", "model")


def coerce(value: str) -> Any:
    """Turn an override's text into int, float, bool, null, list or str."""
    import yaml

    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return value if parsed is None and value not in ("null", "~", "none", "None") else parsed


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys (``lora.r=8``) in a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} is not key=value.", hint="Write e.g. learning_rate=1e-4 lora.r=8.")
        key, raw = item.split("=", 1)
        target = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"Override {key!r}: {part!r} is not a section.", hint="Check the key's spelling.")
        target[parts[-1]] = coerce(raw.strip())
    return data


def resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative dataset/model paths are taken from the config file's folder when they exist there."""
    targets = [(data, key) for key in _PATH_FIELDS]
    targets += [(entry, "dataset") for entry in data.get("dataset_mix") or [] if isinstance(entry, dict)]
    for entry, key in targets:
        value = entry.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            candidate = (base / value).resolve()
            if candidate.exists():
                entry[key] = str(candidate)
    return data


def resolve_stored_datasets(data: dict[str, Any]) -> dict[str, Any]:
    """``dataset``/``eval_dataset`` naming a stored dataset (version id, id or name) -> its normalised file.

    The store is the one registry of datasets, so ``tunelab train`` asks the
    dataset service, as the worker does, and opens the store only when a value
    can mean nothing else. Files and path-like values are left to preflight,
    which reports a missing file with its own hint.
    """
    keys = [key for key in ("dataset", "eval_dataset") if isinstance(data.get(key), str)]
    from tunelab.jobs import datasets as dataset_service

    stored = [key for key in keys if dataset_service.is_stored_reference(data[key])]
    if not stored:
        return data
    from tunelab.settings import get_settings
    from tunelab.store.db import session_factory

    with session_factory(get_settings().resolved_database_url)() as session:
        for key in stored:
            data[key] = dataset_service.resolve(session, data[key])
    return data


def load_train_config(path: Path, overrides: list[str]) -> Any:
    """YAML (or JSON) file + overrides -> validated TrainConfig."""
    from tunelab.training.config import load_config_dict

    return load_config_dict(resolve_stored_datasets(read_config_file(path, overrides)))


def read_config_file(path: Path, overrides: list[str]) -> dict[str, Any]:
    """A config file's fields with ``overrides`` applied and paths made relative to the file, not yet validated."""
    import yaml

    if not path.exists():
        raise ConfigError(f"Config file {path} not found.", hint="Try one of the files in examples/.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}", hint="Fix the YAML syntax.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of fields.", hint="See examples/identity-lora.yaml.")
    return resolve_paths(apply_overrides(data, overrides), path.resolve().parent)


def _default_run_dir(name: str) -> Path:
    """``./runs/<name>-<timestamp>``, the name reduced to one safe folder name (names are labels)."""
    import re

    slug = re.sub(r"[^\w.-]+", "-", name).strip(".-") or "run"
    return Path("runs") / f"{slug[:100]}-{time.strftime('%Y%m%d-%H%M%S')}"


def train_command(
    config_file: Path = typer.Argument(..., help="Training config (YAML); see examples/."),
    overrides: list[str] = typer.Argument(None, help="Field overrides, e.g. learning_rate=1e-4 lora.r=8."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Run folder; default ./runs/<name>-<timestamp>."),
    preflight_only: bool = typer.Option(False, "--check", help="Validate and preflight only."),
    print_command: bool = typer.Option(
        False, "--print-command", help="Distributed configs: write RUN_DIR/config.json and print the torchrun "
        "command instead of running it (run it on every node).",
    ),
) -> None:
    """Fine-tune a model from a config file (resumes when RUN_DIR has checkpoints)."""
    from rich.console import Console

    from tunelab.cli.train_view import RichReporter, print_issues
    from tunelab.training.preflight import errors_only, preflight

    console = Console()
    config = load_train_config(config_file, list(overrides or []))
    issues = preflight(config, run_dir=run_dir)
    print_issues(console, issues)
    if errors_only(issues):
        raise PreflightFailed(
            f"{len(errors_only(issues))} preflight error(s): " + "; ".join(i.message for i in errors_only(issues)),
            hint=" ".join(i.hint for i in errors_only(issues)),
        )
    if preflight_only:
        console.print("[green]Config is valid and preflight passed.[/green]")
        return
    run_dir = run_dir or _default_run_dir(config.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.json").exists():
        (run_dir / "config.json").write_text(json.dumps(config.model_dump(mode="json"), indent=2))
    console.print(f"Run folder: [bold]{run_dir}[/bold]")
    from tunelab.training.run import run_training

    resume = resume_command(config_file, list(overrides or []), run_dir)
    if config.distributed.enabled or print_command:
        from tunelab.cli.train_distributed import run_distributed

        result = run_distributed(console, config, run_dir, print_only=print_command)
        if result is None:
            return
        _conclude(console, config, run_dir, result, resume)
        return
    try:
        with RichReporter(console) as reporter:
            result = run_training(config, run_dir, reporter)
    except KeyboardInterrupt:  # second Ctrl-C: the engine aborted without saving
        console.print(f"[red]Aborted.[/red] Resume from the last saved checkpoint (if any) with: {resume}")
        raise typer.Exit(130) from None
    _conclude(console, config, run_dir, result, resume)


def _conclude(console: Any, config: Any, run_dir: Path, result: Any, resume: str) -> None:
    """Record the run, then say how it ended: the error, the resume command, or the summary."""
    from tunelab.cli.train_view import print_result

    record_in_studio(console, config, run_dir, result, resume)
    if result.error:
        raise TunelabError(result.error["message"], result.error.get("hint", ""), code=result.error["code"])
    if result.status == "stopped":
        console.print(f"[yellow]Stopped at step {result.global_step}; a checkpoint was saved.[/yellow] "
                      f"Resume by running the same command with --run-dir:\n  {resume}", soft_wrap=True)
        raise typer.Exit(result.exit_code)
    print_result(console, result)


def record_in_studio(console: Any, config: Any, run_dir: Path, result: Any, resume: str) -> None:
    """Record the finished run in the studio's store (``tunelab.jobs.cli_runs``) when a home exists.

    The run is already on disk, so a store that cannot be written only costs a
    warning: the training result is never lost to it.
    """
    from tunelab.jobs.cli_runs import record_run, should_record
    from tunelab.settings import get_settings

    settings = get_settings()
    if not should_record(settings):
        return
    try:
        job = record_run(settings, config.model_dump(mode="json"), run_dir, result.status,
                         error=result.error, resume_command=resume)  # fmt: skip
    except Exception as error:  # the run must not fail because the studio's store did
        message = error.message if isinstance(error, TunelabError) else f"{type(error).__name__}: {error}"
        console.print(f"[yellow]Not recorded in the studio ({settings.home}):[/yellow] {message}", soft_wrap=True)
        return
    console.print(f"Recorded in the studio as job [bold]{job.id}[/bold] (tunelab serve shows it; "
                  f"compare with `tunelab jobs compare {job.id} OTHER_JOB`).", soft_wrap=True)


def resume_command(config_file: Path, overrides: list[str], run_dir: Path) -> str:
    """The command that continues this run: the same arguments plus ``--run-dir RUN_DIR``."""
    import shlex

    args = ["tunelab", "train", str(config_file), *overrides, "--run-dir", str(run_dir)]
    return " ".join(shlex.quote(a) for a in args)


class TrainHelpCommand(TyperCommand):
    """``tunelab train --help`` ends with every TrainConfig field, its default, range and help.

    The list is read from the pydantic model (``tunelab.training.config_docs``) only when
    help is asked for, so other commands do not pay for it and no field list is kept here.
    """

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        from tunelab.training.config_docs import iter_fields

        fields = list(iter_fields())
        if not HAS_RICH or self.rich_markup_mode is None:  # click's plain help: a definition list
            with formatter.section("Fields (override with key=value; sections with dots, lora.r=8)"):
                formatter.write_dl([(f.name, _plain_help(f)) for f in fields])
            return
        from rich.console import Console
        from rich.padding import Padding
        from rich.text import Text

        console = Console()
        console.print()
        console.print(Text("Fields", style="bold"), "(override with key=value; sections with dots: lora.r=8)")
        for f in fields:  # Text, not markup: "list[str]" must not be read as a style tag
            line = Text(" ")
            line.append(f.name, style="bold cyan")
            line.append(f"  {f.type}, default {f.default}", style="dim")
            if f.range:
                line.append(f", {'one of' if f.type == 'choice' else 'range'} {f.range}", style="dim")
            console.print(line)
            if f.help:
                console.print(Padding(Text(f.help), (0, 0, 0, 5)))


def _plain_help(field: Any) -> str:
    parts = [field.help, f"Type {field.type}, default {field.default}."]
    if field.range:
        parts.append(f"{'One of' if field.type == 'choice' else 'Range'}: {field.range}.")
    return " ".join(parts)


def register(app: typer.Typer) -> None:
    app.command("train", cls=TrainHelpCommand)(train_command)
