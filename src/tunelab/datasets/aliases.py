"""Recognising the column names other tools and public datasets use.

People bring Dolly's ``instruction/context/response``, CSVs with ``Question``
and ``Answer`` headers, ``query/response`` pairs and ``conversation`` lists.
None of them matches a canonical format as written, and making the user type
``--map`` rules for such common shapes is friction with no benefit. When no
format matches, detection tries the shapes below (column names compared
case-insensitively and without surrounding spaces) and turns the winner into
an ordinary column mapping. That mapping is reported by ``inspect`` and saved
with the version like a user's own, so the conversion stays repeatable and
visible, never magic.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tunelab.datasets.formats import FORMATS
from tunelab.datasets.mapping import FIELDS, Mapping

#: (format, {alias: canonical field}); earlier shapes win ties.
ALIAS_SHAPES: tuple[tuple[str, dict[str, str]], ...] = (
    ("alpaca", {"instruction": "instruction", "context": "input", "response": "output"}),
    ("alpaca", {"instruction": "instruction", "response": "output"}),
    ("alpaca", {"instruction": "instruction", "answer": "output"}),
    ("alpaca", {"instruction": "instruction", "completion": "output"}),
    ("alpaca", {"instruction": "instruction", "target": "output"}),
    ("prompt_completion", {"prompt": "prompt", "response": "completion"}),
    ("prompt_completion", {"prompt": "prompt", "answer": "completion"}),
    ("prompt_completion", {"prompt": "prompt", "output": "completion"}),
    ("prompt_completion", {"prompt": "prompt", "target": "completion"}),
    ("question_answer", {"question": "question", "response": "answer"}),
    ("question_answer", {"query": "question", "response": "answer"}),
    ("question_answer", {"query": "question", "answer": "answer"}),
    ("question_answer", {"question": "question", "output": "answer"}),
    ("input_output", {"input": "input", "target": "output"}),
    ("input_output", {"input": "input", "response": "output"}),
    ("input_output", {"source": "input", "target": "output"}),
    ("input_output", {"user": "input", "assistant": "output"}),
    ("input_output", {"human": "input", "assistant": "output"}),
    ("sharegpt", {"conversation": "conversations"}),
    ("sharegpt", {"dialog": "conversations"}),
    ("sharegpt", {"dialogue": "conversations"}),
    ("sharegpt", {"turns": "conversations"}),
    ("openai", {"chat": "messages"}),
    ("text", {"content": "text"}),
    ("text", {"document": "text"}),
    ("text", {"body": "text"}),
    ("text", {"sentence": "text"}),
    ("text", {"passage": "text"}),
)
#: Optional fields carried along whatever the shape, matched case-insensitively.
_OPTIONAL = {"system": "system", "system_prompt": "system", "history": "history", "tools": "tools"}


def _canonical_shapes() -> list[tuple[str, dict[str, str]]]:
    """The canonical formats themselves, for headers like ``Instruction``/``Output``."""
    shapes = []
    for fmt, slots in FORMATS.items():
        if all(len(slot) == 1 for slot in slots):
            shapes.append((fmt, {slot[0]: slot[0] for slot in slots}))
    return shapes


def _key(name: str) -> str:
    return name.strip().lower()


def infer_mapping(rows: list[Any], base: Mapping) -> tuple[str, Mapping] | None:
    """The format and column mapping most of ``rows`` fit, or None when no shape fits.

    ``rows`` are raw rows with the user's mapping ``base`` already applied; the
    returned mapping extends ``base`` and never overrides one of its rules.
    """
    dicts = [row for row in rows if isinstance(row, dict)]
    if not dicts:
        return None
    shapes = _canonical_shapes() + list(ALIAS_SHAPES)
    votes: Counter[int] = Counter()
    for row in dicts:
        keys = {_key(k) for k in row if isinstance(k, str)}
        for index, (_, shape) in enumerate(shapes):
            if all(alias in keys for alias in shape):
                votes[index] += 1
                break
    if not votes:
        return None
    best = max(votes.values())
    fmt, shape = shapes[min(i for i, n in votes.items() if n == best)]
    wanted = {**{k: v for k, v in _OPTIONAL.items() if v in FIELDS}, **shape}
    columns: dict[str, str] = {}
    taken = set(base.columns.values())
    for row in dicts:
        for name in row:
            if not isinstance(name, str) or name in base.columns:
                continue
            field = wanted.get(_key(name))
            if field is None or field in taken or name == field:
                continue
            columns.setdefault(name, field)
    if not columns:
        return None
    merged = Mapping(columns={**base.columns, **columns}, roles=base.roles, keys=base.keys)
    return fmt, merged
