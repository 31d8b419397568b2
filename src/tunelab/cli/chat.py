"""`tunelab chat MODEL_OR_OUTPUT_DIR`: talk to a base model, a fine-tune or a run's output."""

from __future__ import annotations

import sys
from typing import Any

import typer

_HELP = "Commands: /reset clears the conversation, /exit quits (Ctrl-D works too)."


def _speak(chat_model: Any, messages: list[dict[str, str]], options: dict[str, Any]) -> str:
    """Stream one reply to stdout and return its text."""
    pieces: list[str] = []
    for piece in chat_model.stream(messages, **options):
        pieces.append(piece)
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return "".join(pieces).strip()


def _interactive(chat_model: Any, system: str | None, options: dict[str, Any]) -> None:
    start: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    history = list(start)
    typer.echo(_HELP)
    while True:
        try:
            text = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            typer.echo()
            return
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return
        if text == "/reset":
            history = list(start)
            typer.echo("(conversation cleared)")
            continue
        history.append({"role": "user", "content": text})
        sys.stdout.write("assistant> ")
        history.append({"role": "assistant", "content": _speak(chat_model, history, options)})


def chat(
    model: str = typer.Argument(
        ..., help="Built-in id, Hub id, model folder, adapter folder or tunelab run directory."
    ),
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="Ask once, print, exit."),
    system: str | None = typer.Option(None, "--system", help="System message for the chat."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, max=8192, help="Reply length cap."),
    temperature: float = typer.Option(0.7, "--temperature", min=0.0, max=2.0, help="0 = greedy."),
    top_p: float = typer.Option(0.9, "--top-p", min=0.01, max=1.0, help="Nucleus sampling mass."),
) -> None:
    """Chat with a model: one shot with --prompt, else an interactive loop with history."""
    from tunelab.serving.generation import load_chat_model

    chat_model = load_chat_model(model, progress=True)
    options = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
    if prompt is None:
        _interactive(chat_model, system, options)
        return
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    _speak(chat_model, messages, options)


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
