"""Root Typer app: registers one sub-app per resource and renders errors.

Sub-command modules register themselves in ``_register``; heavy libraries are
imported inside the commands so ``tunelab --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from tunelab import __version__
from tunelab.errors import TunelabError

app = typer.Typer(
    name="tunelab",
    help="tunelab: fine-tune, evaluate, chat with and serve language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Modules under tunelab.cli that expose ``register(app)``; missing ones are skipped
# so a partial install still starts.
_COMMAND_MODULES = ("datasets", "models", "train", "chat", "export", "serve", "jobs", "tokens")


def _register() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"tunelab.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"tunelab.cli.{name}":
                continue
            raise
        module.register(app)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    if debug:
        os.environ["TUNELAB_DEBUG"] = "1"


@app.command()
def version() -> None:
    """Print the tunelab version."""
    typer.echo(__version__)


def run() -> None:
    """Entry point that turns TunelabError into a message, a hint and exit code 1."""
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(n) returns n when not standalone
            sys.exit(code)
    except TunelabError as error:
        if os.environ.get("TUNELAB_DEBUG"):
            raise
        typer.secho(f"Error [{error.code}]: {error.message}", fg="red", err=True)
        if error.hint:
            typer.secho(f"Hint: {error.hint}", err=True)
        sys.exit(1)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


_register()
