"""Examples for the tasks beyond causal LMs: seq2seq pairs and labeled texts, and the label set.

A seq2seq example is the conversation before its last reply, rendered by
``encoding.render_source``, as encoder input and that reply as the target,
each with the tokenizer's own special tokens (T5 ends both with ``</s>``,
BART wraps them in ``<s> ... </s>``). A labeled example is a text, or a text
pair, with a class id or a number. The label set of a classifier is inferred
from the data (numeric labels in numeric order, names in alphabetical order)
and saved with the run, so resume, export and serving read the same order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.datasets.records import Record
from tunelab.errors import DatasetError
from tunelab.models.loading import LABELS_FILE
from tunelab.training.encoding import Encoded, render_source


@dataclass
class LabeledExample:
    """One tokenised text (or pair) and its label: a class id, or a float for regression."""

    input_ids: list[int]
    token_type_ids: list[int] | None
    label: int | float
    truncated: bool = False

    @property
    def target_tokens(self) -> int:
        return 1  # one prediction per example


def _tokens(tokenizer: Any, text: str, pair: str | None, max_length: int) -> tuple[dict[str, Any], bool]:
    full = tokenizer(text, pair, add_special_tokens=True)
    if len(full["input_ids"]) <= max_length:
        return full, False
    return tokenizer(text, pair, add_special_tokens=True, truncation="longest_first", max_length=max_length), True


def seq2seq_parts(record: Record, system_prompt: str | None) -> tuple[list[dict[str, Any]], str]:
    """(the messages before the last reply, that reply) of a conversation or preference row."""
    if record.kind == "text":
        raise DatasetError(
            "`task: seq2seq` needs prompt -> target rows, but the dataset has plain text rows.",
            hint="Use an instruction, question/answer, prompt/completion or chat dataset, or `task: causal_lm`.",
            code="seq2seq_needs_pairs",
        )
    turns = [m.model_dump() for m in (record.messages or []) + (record.chosen or [])]
    last = max((i for i, m in enumerate(turns) if m["role"] == "assistant"), default=None)
    if last is None:
        return turns, ""
    prompt = turns[:last]
    if system_prompt and not any(m["role"] == "system" for m in prompt):
        prompt.insert(0, {"role": "system", "content": system_prompt})
    return prompt, str(turns[last]["content"])


def encode_seq2seq(record: Record, tokenizer: Any, *, system_prompt: str | None, max_length: int) -> Encoded:
    """Encoder ids of the prompt and target ids of the reply (``labels``), each at most ``max_length``."""
    prompt, target = seq2seq_parts(record, system_prompt)
    source, cut_source = _tokens(tokenizer, render_source(prompt), None, max_length)
    if not target:
        return Encoded(list(source["input_ids"]), [], cut_source)
    labels, cut_target = _tokens(tokenizer, target, None, max_length)
    return Encoded(list(source["input_ids"]), list(labels["input_ids"]), cut_source or cut_target)


def infer_labels(records: list[Record], task: str) -> list[str]:
    """The class names of a classification dataset in id order; [] for regression (checked numbers)."""
    if task == "regression":
        for row, record in enumerate(records):
            parse_number(record.label, row)
        return []
    names = {str(r.label) for r in records}
    if len(names) < 2:
        raise DatasetError(
            f"A classifier needs at least two labels; the dataset has {len(names)} ({', '.join(sorted(names))}).",
            hint="Add rows of another class, or use `task: regression` for numeric targets.",
            code="too_few_labels",
        )
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)


def parse_number(label: str | None, row: int) -> float:
    """A regression target; a label that is no finite number is a row-level DatasetError."""
    try:
        value = float(label or "")
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DatasetError(
            f"`task: regression` needs numeric labels; row {row} has {label!r}.",
            hint="Fix or drop that row, or use `task: classification` for named classes.",
            code="bad_value", details={"row": row},
        )  # fmt: skip
    return value


def encode_labeled(record: Record, tokenizer: Any, *, task: str, labels: list[str], max_length: int,
                   row: int = 0) -> LabeledExample:  # fmt: skip
    """Token ids (and segment ids of a pair) with the label's id, or its number for regression."""
    enc, truncated = _tokens(tokenizer, record.text or "", record.text_pair, max_length)
    if task == "regression":
        label: int | float = parse_number(record.label, row)
    elif record.label in labels:
        label = labels.index(str(record.label))
    else:
        raise DatasetError(
            f"row {row} has label {record.label!r}, which the training data does not have ({', '.join(labels)}).",
            hint="Use the training labels in the eval data too.", code="unknown_label", details={"row": row},
        )  # fmt: skip
    types = enc.get("token_type_ids")
    return LabeledExample(list(enc["input_ids"]), list(types) if types is not None else None, label, truncated)


def save_labels(folder: Path, task: str, labels: list[str]) -> None:
    """``labels.json`` beside the weights: what loading, merging and /v1/classify read back."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LABELS_FILE).write_text(json.dumps({"task": task, "labels": labels}, indent=2) + "\n")
