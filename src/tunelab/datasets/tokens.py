"""Rendering records the way the model sees them, and counting their tokens.

With a Hugging Face tokenizer, conversations are rendered with its chat
template (``apply_chat_template``) and counted exactly. Without one, a record
is rendered as plain ``role: content`` lines and counted with a regex
approximation (one token per word or punctuation mark), labelled as such in
every report: fast enough to stream a GB, and close to BPE counts for English.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any, Protocol

from tunelab.datasets.records import Message, Record
from tunelab.errors import DatasetError

_APPROX = re.compile(r"\w+|[^\w\s]")
APPROX_NAME = "approximate (regex: words and punctuation)"


def plain_lines(messages: list[Message]) -> str:
    lines = []
    for message in messages:
        text = message.content
        for call in message.tool_calls or []:
            text += f"{' ' if text else ''}[tool call] {call.name}({call.arguments})"
        lines.append(f"{message.role}: {text}")
    return "\n".join(lines)


def sequences(record: Record) -> list[list[Message]]:
    """The conversations training will see: one, or prompt+chosen and prompt+rejected."""
    if record.kind == "preference":
        prompt = record.messages or []
        return [prompt + (record.chosen or []), prompt + (record.rejected or [])]
    return [record.messages or []]


class TokenCounter(Protocol):
    name: str
    approximate: bool

    def render(self, record: Record) -> str: ...

    def count(self, record: Record) -> int: ...


class ApproxCounter:
    """Regex word/punctuation count over the plain rendering; no model needed."""

    name = APPROX_NAME
    approximate = True

    def render(self, record: Record) -> str:
        if record.text is not None:
            return record.text
        rendered = [plain_lines(seq) for seq in sequences(record)]
        return "\n--- rejected ---\n".join(rendered)

    def count(self, record: Record) -> int:
        if record.text is not None:
            return len(_APPROX.findall(record.text))
        return max(len(_APPROX.findall(plain_lines(seq))) for seq in sequences(record))


def _template_dicts(messages: list[Message]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            item["tool_calls"] = [
                {"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in message.tool_calls
            ]
        out.append(item)
    return out


class HFCounter:
    """Exact counts with a Hugging Face tokenizer and its chat template."""

    approximate = False

    def __init__(self, tokenizer: Any, name: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.name = name or getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        self.has_template = bool(getattr(tokenizer, "chat_template", None))

    def _render_messages(self, messages: list[Message], tools: str | None) -> str:
        if not self.has_template:
            return plain_lines(messages)
        dicts = _template_dicts(messages)
        attempts: list[dict[str, Any]] = [{}]
        if tools:
            with contextlib.suppress(ValueError):
                attempts.insert(0, {"tools": json.loads(tools)})
        for extra in attempts:
            try:
                return self.tokenizer.apply_chat_template(dicts, tokenize=False, **extra)
            except Exception:  # templates reject shapes they do not support
                continue
        return plain_lines(messages)

    def _render_all(self, record: Record) -> list[str]:
        if record.text is not None:
            return [record.text]
        return [self._render_messages(seq, record.tools) for seq in sequences(record)]

    def render(self, record: Record) -> str:
        return "\n--- rejected ---\n".join(self._render_all(record))

    def count(self, record: Record) -> int:
        lengths = [
            len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            for text in self._render_all(record)
        ]
        return max(lengths)


def load_tokenizer(name_or_path: str) -> Any:
    """A tokenizer from a local folder (GGUF folders included) or a cached Hub name."""
    try:
        from transformers import AutoTokenizer

        path = Path(name_or_path)
        ggufs = sorted(path.glob("*.gguf")) if path.is_dir() else []
        if ggufs and not (path / "tokenizer.json").exists() and not (path / "tokenizer_config.json").exists():
            return AutoTokenizer.from_pretrained(path, gguf_file=ggufs[0].name)
        if path.suffix == ".gguf" and path.is_file():
            return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception as exc:
        raise DatasetError(
            f"cannot load tokenizer {name_or_path!r}: {type(exc).__name__}: {exc}",
            "Give a local model folder, or a Hub model name already in the cache (offline mode)",
            code="tokenizer_unavailable",
        ) from None


def make_counter(tokenizer: Any = None) -> TokenCounter:
    """A counter for a tokenizer object, a model path/name, or None (the approximation)."""
    if tokenizer is None:
        return ApproxCounter()
    if isinstance(tokenizer, str | Path):
        return HFCounter(load_tokenizer(str(tokenizer)), name=str(tokenizer))
    return HFCounter(tokenizer)
