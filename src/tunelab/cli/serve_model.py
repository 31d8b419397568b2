"""`tunelab serve-model OUTPUT_DIR [--adapter NAME=PATH ...]`: one model and its fine-tunes, served alone.

The guide's local deployment: no studio, no jobs, just the OpenAI-compatible
routes (``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``) and
``/generate`` for the base and every adapter, batched together in one
process. Everything is loaded before the port opens, so a wrong path is an
error on the terminal, not on the first request. ``--print-vllm`` prints the
vLLM command serving the same names on a GPU machine instead.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import typer


def serve_model(
    output_dir: Path = typer.Argument(..., help="Run directory, its output/, a PEFT adapter or a model folder."),
    adapter: list[str] = typer.Option([], "--adapter", help="NAME=PATH of another LoRA adapter of the same base "
                                      "(repeat the option for each)."),
    name: str = typer.Option(None, "--name", help="Name of OUTPUT_DIR's model (default: the run's folder name)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (others need an API token)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port (the guide's 8000)."),
    quantize: str = typer.Option("none", "--quantize", help="int8: dynamic int8 Linear layers (CPU inference)."),
    max_batch: int = typer.Option(16, "--max-batch", min=1, max=256, help="Requests decoded together."),
    print_vllm: bool = typer.Option(False, "--print-vllm", help="Print the vLLM command for the same models and exit."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve a tuned model, its base and more adapters from one process (OpenAI API and /generate)."""
    from tunelab.errors import InvalidInput
    from tunelab.serving.standalone import parse_adapters, served_models, shell_line, vllm_command

    if quantize not in ("none", "int8"):
        raise InvalidInput(f"--quantize {quantize!r} is not supported", "use --quantize int8 (or leave it out)")
    served = served_models(output_dir, parse_adapters(adapter), name)
    if print_vllm:
        typer.echo(shell_line(vllm_command(served, host=host, port=port)))
        return
    app = build_app(served, host=host, port=port, quantize=quantize, max_batch=max_batch)
    typer.echo(f"serving {', '.join(served.ids())} on http://{host}:{port} "
               f"(POST /v1/chat/completions, /v1/completions, /generate; GET /v1/models)")  # fmt: skip
    from tunelab.cli.serve import make_server

    with contextlib.suppress(KeyboardInterrupt):  # uvicorn raises the captured Ctrl-C again after shutdown
        make_server(app, host, port, log_level).run()


def build_app(served: Any, *, host: str = "127.0.0.1", port: int = 8000, quantize: str = "none",
              max_batch: int = 16, precision: str = "auto") -> Any:  # fmt: skip
    """The API app answering only ``served``'s names, every model loaded (and quantized) up front."""
    from tunelab.api import create_app
    from tunelab.serving.registry import LoadedModels
    from tunelab.settings import get_settings

    settings = get_settings().model_copy(update={"host": host, "port": port, "monitor_interval_s": 0})
    app = create_app(settings)
    models = LoadedModels(capacity=len(served.ids()), queue_size=settings.chat_queue_size,
                          max_adapters=len(served.ids()), max_batch=max_batch,
                          precision="fp32" if quantize == "int8" else precision)  # fmt: skip
    for key in served.ids():
        models.load(served.location(key))
    if quantize == "int8":
        for engine in models.engines():
            engine.quantize()
    app.state.served, app.state.chat_models = served, models
    return app


def register(app: typer.Typer) -> None:
    app.command("serve-model")(serve_model)
