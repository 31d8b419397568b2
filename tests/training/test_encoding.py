"""Chat rendering and loss masks: replies only by default, prompts on request, text with EOS."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.datasets.records import Record
from tunelab.training.encoding import IGNORE, encode_chat, encode_record, encode_text


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _chat(*turns: tuple[str, str], weight: float | None = None) -> Record:
    messages = [{"role": r, "content": c} for r, c in turns]
    if weight is not None:
        messages[1]["weight"] = weight
    return Record.model_validate({"messages": messages})


def _trained(tokenizer, enc) -> str:
    return tokenizer.decode([t for t, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != IGNORE])


def test_only_assistant_replies_are_trained(tokenizer) -> None:
    record = _chat(("user", "hi there"), ("assistant", "Hello friend"), ("user", "again"), ("assistant", "Yes"))
    enc = encode_chat(record, tokenizer, system_prompt=None, train_on_prompt=False, max_length=512)
    assert _trained(tokenizer, enc) == "Hello friend<|im_end|>\nYes<|im_end|>\n"


def test_weight_zero_and_train_on_prompt(tokenizer) -> None:
    record = _chat(("user", "hi"), ("assistant", "skip me"), ("user", "q"), ("assistant", "keep"), weight=0)
    enc = encode_chat(record, tokenizer, system_prompt=None, train_on_prompt=False, max_length=512)
    assert _trained(tokenizer, enc) == "keep<|im_end|>\n"
    full = encode_chat(_chat(("user", "hi"), ("assistant", "yo")), tokenizer, system_prompt="Be brief.",
                       train_on_prompt=True, max_length=512)
    text = _trained(tokenizer, full)
    assert "Be brief." in text and "hi" in text and "yo<|im_end|>" in text


def test_system_prompt_is_added(tokenizer) -> None:
    enc = encode_chat(_chat(("user", "hi"), ("assistant", "yo")), tokenizer, system_prompt="You are Tuna.",
                      train_on_prompt=False, max_length=512)
    assert "You are Tuna." in tokenizer.decode(enc.input_ids)


def test_text_mode_ends_with_eos_and_trains_everything(tokenizer) -> None:
    enc = encode_text(Record(text="The quick brown fox"), tokenizer, max_length=512)
    assert enc.input_ids[-1] == tokenizer.eos_token_id
    assert enc.labels == enc.input_ids


def test_truncation_is_flagged(tokenizer) -> None:
    enc = encode_record(_chat(("user", "hello " * 50), ("assistant", "ok " * 50)), tokenizer,
                        system_prompt=None, train_on_prompt=False, max_length=32)
    assert enc.truncated and len(enc.input_ids) == 32


def test_tool_calls_render_as_text_without_template_support(tokenizer) -> None:
    record = Record.model_validate({
        "messages": [
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "weather", "arguments": '{"city": "Paris"}'}]},
            {"role": "tool", "content": '{"temp": 20}'},
            {"role": "assistant", "content": "It is 20 degrees."},
        ],
        "tools": '[{"name": "weather"}]',
    })
    enc = encode_chat(record, tokenizer, system_prompt=None, train_on_prompt=False, max_length=1024)
    text = tokenizer.decode(enc.input_ids)
    assert '<tool_call>{"name": "weather", "arguments": {"city": "Paris"}}</tool_call>' in text
    assert "<tool_response>" in text and "You can call these tools" in text
    trained = _trained(tokenizer, enc)
    assert "<tool_call>" in trained and "It is 20 degrees." in trained and "Paris?" not in trained


def test_truncation_reported_in_events(make_config, tmp_path: Path) -> None:
    from tests.training.conftest import read_jsonl

    from tunelab.training import run_training

    result = run_training(make_config(max_length=44, epochs=1, output={"evaluate": False}), tmp_path / "r")
    assert result.status == "completed"
    events = {e["type"]: e for e in read_jsonl(tmp_path / "r" / "events.jsonl")}
    assert events["truncation"]["data"]["train"] > 0
