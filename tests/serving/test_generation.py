"""Generation on the tiny model: template use, streaming, adapters and run directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.errors import InvalidInput, ModelUnavailable
from tunelab.serving.generation import load_chat_model

MESSAGES = [{"role": "user", "content": "Give three tips for staying healthy."}]


def test_generate_and_stream_agree_when_greedy(tiny_model_dir: Path) -> None:
    chat = load_chat_model(tiny_model_dir, progress=False)
    assert chat.parts.adapter is None and chat.parts.base == tiny_model_dir.resolve()
    reply = chat.complete(MESSAGES, max_new_tokens=12, temperature=0).text
    assert isinstance(reply, str)
    assert "".join(chat.stream(MESSAGES, max_new_tokens=12, temperature=0)).strip() == reply
    assert chat.render(MESSAGES).endswith("<|im_start|>assistant\n")
    new_tokens = chat.tokenizer(reply, add_special_tokens=False)["input_ids"]
    assert len(new_tokens) <= 12 + 2  # re-tokenising may split a little differently


def test_sampling_uses_temperature(tiny_model_dir: Path) -> None:
    import torch

    chat = load_chat_model(tiny_model_dir, progress=False)
    torch.manual_seed(0)
    replies = {chat.complete(MESSAGES, max_new_tokens=8, temperature=1.5, top_p=1.0).text for _ in range(4)}
    assert len(replies) > 1  # a random tiny model sampled hot does not repeat itself


def test_bad_generation_arguments_raise(tiny_model_dir: Path) -> None:
    chat = load_chat_model(tiny_model_dir, progress=False)
    with pytest.raises(InvalidInput):
        chat.complete([], max_new_tokens=4)
    with pytest.raises(InvalidInput):
        chat.complete([{"role": "robot", "content": "x"}], max_new_tokens=4)
    with pytest.raises(InvalidInput):
        chat.complete(MESSAGES, max_new_tokens=0)


def _save_adapter(base: Path, folder: Path, base_name: str | None = None) -> None:
    """A LoRA adapter with random (non-identity) weights, saved like the engine saves one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    if base_name is not None:
        adapter_config = json.loads((folder / "adapter_config.json").read_text())
        adapter_config["base_model_name_or_path"] = base_name
        (folder / "adapter_config.json").write_text(json.dumps(adapter_config))


def _logits(chat: object, text: str) -> object:
    import torch

    encoded = chat.tokenizer(text, return_tensors="pt")  # type: ignore[attr-defined]
    with torch.inference_mode():
        return chat.model(**encoded).logits  # type: ignore[attr-defined]


def test_run_directory_with_adapter_loads_base_plus_adapter(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel

    run = tmp_path / "run"
    _save_adapter(tiny_model_dir, run / "output")
    (run / "config.json").write_text(json.dumps({"model": str(tiny_model_dir)}))
    tuned = load_chat_model(run, progress=False)
    base = load_chat_model(tiny_model_dir, progress=False)
    assert isinstance(tuned.model, PeftModel)
    assert tuned.parts.adapter == run / "output" and tuned.parts.tokenizer == run / "output"
    assert not torch.allclose(_logits(tuned, "hello"), _logits(base, "hello"))
    assert isinstance(tuned.complete(MESSAGES, max_new_tokens=4, temperature=0).text, str)


def test_adapter_with_moved_base_falls_back_to_run_config(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    _save_adapter(tiny_model_dir, run / "output", base_name=str(tmp_path / "gone"))
    with pytest.raises(ModelUnavailable, match="base model"):
        load_chat_model(run / "output", progress=False)
    (run / "config.json").write_text(json.dumps({"model": str(tiny_model_dir)}))
    assert load_chat_model(run, progress=False).parts.base == tiny_model_dir.resolve()


def test_full_model_run_output_loads_without_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "output")
    (run / "config.json").write_text(json.dumps({"model": "smollm2-135m-instruct"}))
    chat = load_chat_model(run, progress=False)
    assert chat.parts.adapter is None and chat.parts.base == (run / "output").resolve()
