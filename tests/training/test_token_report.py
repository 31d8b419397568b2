"""The dataset report counts tokens exactly as the engine encodes them, tool-call rows included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tunelab.datasets import inspect_file, iter_records
from tunelab.training.encoding import encode_record
from tunelab.training.token_report import EngineCounter, make_counter

DATA = Path(__file__).resolve().parent / "data"
UNLIMITED = 1_000_000

SHAREGPT = [
    {"conversations": [{"from": "human", "value": "Name a colour of the sky."},
                       {"from": "gpt", "value": "Blue, on a clear day."}]},
    {"conversations": [{"from": "system", "value": "You answer in one word."},
                       {"from": "human", "value": "Opposite of hot?"}, {"from": "gpt", "value": "Cold."},
                       {"from": "human", "value": "And of up?"}, {"from": "gpt", "value": "Down."}]},
]  # fmt: skip
ALPACA = [
    {"instruction": "Give three tips for staying healthy.", "input": "",
     "output": "Eat well, exercise and sleep enough."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
]  # fmt: skip
TEXT = [{"text": "The quick brown fox jumps over the lazy dog."}, {"text": "def add(a, b):\n    return a + b\n"}]

# A template that renders tool calls and tool schemas itself: arguments go through
# ``tojson``, so a JSON string and the parsed object give different token counts.
TOOL_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "{% for call in message.tool_calls or [] %}<tool_call>{{ call.function.name }} "
    "{{ call.function.arguments | tojson }}</tool_call>{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def tool_tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = TOOL_TEMPLATE
    return tokenizer


def _files(tmp_path: Path) -> list[Path]:
    files = [DATA / "glaive_toolcall_excerpt.json"]
    for name, rows in (("sharegpt", SHAREGPT), ("alpaca", ALPACA), ("text", TEXT)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(rows))
        files.append(path)
    return files


def _engine_lengths(path: Path, tokenizer: Any) -> list[int]:
    return [len(encode_record(record, tokenizer, system_prompt=None, train_on_prompt=False,
                              max_length=UNLIMITED).input_ids) for record in iter_records(path)]  # fmt: skip


@pytest.mark.parametrize("which", ["tokenizer", "tool_tokenizer"])
def test_report_counts_equal_the_engines_tokens(which: str, request: pytest.FixtureRequest,
                                                tmp_path: Path) -> None:  # fmt: skip
    tokenizer = request.getfixturevalue(which)
    for path in _files(tmp_path):
        expected = _engine_lengths(path, tokenizer)
        report = inspect_file(path, counter=make_counter(tokenizer), preview_rows=100, max_length=UNLIMITED)
        assert [row.tokens for row in report.preview] == expected, path.name
        tokens = report.quality.tokens
        assert not tokens.approximate and tokens.count == len(expected)
        assert tokens.max == max(expected) and tokens.mean == pytest.approx(sum(expected) / len(expected), abs=0.01)


def test_tool_call_rows_are_rendered_as_the_engine_renders_them(tool_tokenizer: Any, tokenizer: Any) -> None:
    records = [r for r in iter_records(DATA / "glaive_toolcall_excerpt.json") if any(
        m.tool_calls for m in r.messages or [])]  # fmt: skip
    assert len(records) == 3
    native = EngineCounter(tool_tokenizer).render(records[0])
    call = records[0].messages[[bool(m.tool_calls) for m in records[0].messages].index(True)].tool_calls[0]
    assert json.dumps(json.loads(call.arguments)) in native  # arguments as an object, not a quoted string
    assert "Tools: [" in native
    as_text = EngineCounter(tokenizer).render(records[0])  # template without tool support
    assert "<tool_call>" in as_text and "<tool_response>" in as_text and "You can call these tools" in as_text


def test_plain_text_counts_include_the_eos_training_adds(tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "Hello there"}\n')
    [row] = inspect_file(path, counter=make_counter(tokenizer)).preview
    ids = tokenizer("Hello there", add_special_tokens=True)["input_ids"]
    assert row.tokens == len(ids) + 1 and row.rendered == "Hello there"


def test_counter_from_a_model_folder_and_without_one(tiny_model_dir: Path) -> None:
    counter = make_counter(str(tiny_model_dir))
    assert not counter.approximate and counter.name == str(tiny_model_dir)
    assert make_counter().approximate


def test_unknown_tokenizer_is_a_clear_error(tmp_path: Path) -> None:
    from tunelab.errors import TunelabError

    with pytest.raises(TunelabError) as caught:
        make_counter(str(tmp_path / "no-such-model"))
    assert caught.value.code == "tokenizer_unavailable"
