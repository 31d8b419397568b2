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
_COMMAND_MODULES = (
    "datasets", "models", "train", "chat", "classify", "export", "serve", "jobs", "tokens", "monitor",
    "sweeps", "estimate", "serve_model", "evaluate", "ratings", "experiments", "ensembles", "deploy", "workers",
    "providers",
)


def _register() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"tunelab.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"tunelab.cli.{name}":
                continue
            raise
        module.register(app)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tunelab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    show_version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
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
    except OSError as exc:  # a missing or read-only folder: say which one, not where in the code
        if os.environ.get("TUNELAB_DEBUG") or "--debug" in sys.argv:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        typer.secho(f"Error [os_error]: {exc.strerror or exc}{where}", fg="red", err=True)
        typer.secho("Hint: check that the path exists and is writable (the studio's folder is TUNELAB_HOME, "
                    "default ~/.tunelab); --debug shows the traceback.", err=True)
        sys.exit(1)
    except Exception as exc:
        if _is_usage_error(exc):  # unknown command or option, missing argument
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if os.environ.get("TUNELAB_DEBUG") or "--debug" in sys.argv:
            raise
        typer.secho(f"Error [internal]: {type(exc).__name__}: {exc}", fg="red", err=True)
        typer.secho("Hint: run the command again with --debug for the traceback.", err=True)
        sys.exit(1)


def _is_usage_error(exc: Exception) -> bool:
    """Click's usage errors, whether typer vendors click (0.2x) or uses it directly."""
    import click

    vendored = getattr(typer, "TyperException", ())
    return isinstance(exc, click.ClickException | vendored) and hasattr(exc, "show")


_register()
