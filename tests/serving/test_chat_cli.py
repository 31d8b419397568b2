"""`tunelab chat` one-shot and interactive on the tiny model."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tunelab.cli.main import app
from tunelab.serving.generation import load_chat_model


def test_one_shot_prints_the_greedy_reply(tiny_model_dir: Path) -> None:
    expected = load_chat_model(tiny_model_dir, progress=False).complete(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}],
        max_new_tokens=8,
        temperature=0,
    ).text
    result = CliRunner().invoke(
        app,
        [
            "chat", str(tiny_model_dir), "--prompt", "hello", "--system", "Be brief.",
            "--max-new-tokens", "8", "--temperature", "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == expected


def test_interactive_loop_keeps_history_and_resets(tiny_model_dir: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["chat", str(tiny_model_dir), "--max-new-tokens", "4", "--temperature", "0"],
        input="hello\nand again\n/reset\n/exit\nnever read\n",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count("assistant> ") == 2
    assert "(conversation cleared)" in result.stdout
    assert result.stdout.count("you> ") == 4  # the line after /exit is never prompted for
