"""Counting tokens without a tokenizer, and the counter shape the quality report uses.

Exact counts need a tokenizer and the engine's chat rendering, which live above
this part (``tunelab.training.token_report.make_counter`` builds that counter;
pass it to ``inspect_file(counter=...)``). Without one, a record is rendered as
plain ``role: content`` lines and counted with a regex approximation (one token
per word or punctuation mark), labelled as such in every report: fast enough to
stream a GB, and close to BPE counts for English.
"""

from __future__ import annotations

import re
from typing import Protocol

from tunelab.datasets.records import Message, Record

_APPROX = re.compile(r"\w+|[^\w\s]")
APPROX_NAME = "approximate (regex: words and punctuation)"


def plain_lines(messages: list[Message]) -> str:
    """``role: content`` lines: a readable rendering for counting and previews when there is no template."""
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
    """What the quality report needs from a counter: its name, whether it is exact, a render and a count."""

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
