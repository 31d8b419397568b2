"""Dataset formats: how each is recognised and converted into a ``Record``.

Detection looks at the columns of the first rows (after the user's column
mapping) and picks the first format, in ``FORMATS`` order, whose required
columns most rows have: preference pairs before conversations, conversations
before instruction formats, plain text last. ``--format`` skips detection.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from tunelab.datasets.issues import REPAIR_HINT, RowProblem
from tunelab.datasets.mapping import Mapping
from tunelab.datasets.messages import as_text, decode_json_cell, to_message, to_messages
from tunelab.datasets.records import Message, Record

#: format -> required columns (any one of a tuple inside satisfies that slot).
FORMATS: dict[str, tuple[tuple[str, ...], ...]] = {
    "preference": (("chosen",), ("rejected",)),
    "sharegpt": (("conversations",),),
    "openai": (("messages",),),
    "alpaca": (("instruction",), ("output",)),
    "prompt_completion": (("prompt",), ("completion",)),
    "question_answer": (("question",), ("answer",)),
    "input_output": (("input",), ("output",)),
    "text": (("text",),),
    "classification": (("text",), ("label",)),  # never detected (text wins): the task names it
}
_PAIRS = {"prompt_completion": ("prompt", "completion"), "question_answer": ("question", "answer"),
          "input_output": ("input", "output")}  # fmt: skip


def matches(fmt: str, row: Any) -> bool:
    if isinstance(row, str):
        return fmt == "text"
    return isinstance(row, dict) and all(any(c in row for c in slot) for slot in FORMATS[fmt])


def detect_format(rows: list[Any]) -> str | None:
    """The format most of ``rows`` match (ties go to the earlier format), or None."""
    votes: Counter[str] = Counter()
    for row in rows:
        for fmt in FORMATS:
            if matches(fmt, row):
                votes[fmt] += 1
                break
    if not votes:
        return None
    best = max(votes.values())
    return next(fmt for fmt in FORMATS if votes[fmt] == best)


def _need(row: dict[str, Any], column: str, fmt: str) -> Any:
    if column not in row:
        have = ", ".join(sorted(row)) or "none"
        raise RowProblem(
            "missing_column",
            f"missing column `{column}` required by the {fmt} format (columns: {have})",
            f"Add `{column}` to every row, map yours with --map YOURCOLUMN={column}, or pick another --format",
        )
    return row[column]


def _system(row: dict[str, Any]) -> list[Message]:
    text = as_text(row.get("system"), "`system`")
    return [Message(role="system", content=text)] if text else []


def _alpaca(row: dict[str, Any], mapping: Mapping) -> Record:
    instruction = as_text(_need(row, "instruction", "alpaca"), "`instruction`")
    output = as_text(_need(row, "output", "alpaca"), "`output`")
    extra = as_text(row.get("input"), "`input`")
    messages = _system(row)
    for i, pair in enumerate(decode_json_cell(row.get("history")) or []):
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise RowProblem("bad_value", f"`history` item {i} is not a [question, answer] pair",
                             "Write history as [[question, answer], ...]")  # fmt: skip
        messages += [Message(role="user", content=as_text(pair[0], "`history` question")),
                     Message(role="assistant", content=as_text(pair[1], "`history` answer"))]  # fmt: skip
    user = f"{instruction}\n{extra}" if extra else instruction
    messages += [Message(role="user", content=user), Message(role="assistant", content=output)]
    return Record(messages=messages)


def _tools(row: dict[str, Any]) -> str | None:
    tools = row.get("tools")
    if tools in (None, "", []):
        return None
    return tools if isinstance(tools, str) else json.dumps(tools, ensure_ascii=False)


def _conversation(row: dict[str, Any], mapping: Mapping, column: str, fmt: str) -> Record:
    messages = to_messages(_need(row, column, fmt), mapping, column)
    if messages and messages[0].role != "system":
        messages = _system(row) + messages
    return Record(messages=messages, tools=_tools(row))


def _pair(fmt: str) -> Callable[[dict[str, Any], Mapping], Record]:
    ask, reply = _PAIRS[fmt]

    def convert(row: dict[str, Any], mapping: Mapping) -> Record:
        user = as_text(_need(row, ask, fmt), f"`{ask}`")
        answer = as_text(_need(row, reply, fmt), f"`{reply}`")
        messages = [*_system(row), Message(role="user", content=user), Message(role="assistant", content=answer)]
        return Record(messages=messages)

    return convert


def _text(row: Any, mapping: Mapping) -> Record:
    if isinstance(row, str):
        return Record(text=row)
    return Record(text=as_text(_need(row, "text", "text"), "`text`"))


_SPEAKER = re.compile(r"(?:^|\n\n)(Human|Assistant|User):[ \t]?")


def split_transcript(text: str) -> list[Message] | None:
    """Turns of an Anthropic-HH style transcript (``\n\nHuman: ...\n\nAssistant: ...``), or None."""
    parts = _SPEAKER.split(text)
    if len(parts) < 3 or parts[0].strip():
        return None
    roles = {"Human": "user", "User": "user", "Assistant": "assistant"}
    return [Message(role=roles[tag], content=body.strip())  # type: ignore[arg-type]
            for tag, body in zip(parts[1::2], parts[2::2], strict=True)]  # fmt: skip


def _side(value: Any, mapping: Mapping, column: str) -> list[Message]:
    value = decode_json_cell(value)
    if isinstance(value, str):
        return split_transcript(value) or [Message(role="assistant", content=value)]
    if isinstance(value, dict):
        return [to_message(value, mapping, f"`{column}`", default_role="assistant")]
    return to_messages(value, mapping, column)


def _same(a: Message, b: Message) -> bool:
    return (a.role, a.content.strip()) == (b.role, b.content.strip())


def _shared_prefix(chosen: list[Message], rejected: list[Message]) -> int:
    """How many leading turns both sides repeat (the prompt, in full-conversation datasets)."""
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and _same(chosen[n], rejected[n]):
        n += 1
    while n and chosen[n - 1].role == "assistant":  # the prompt ends before a reply
        n -= 1
    return n


def _preference(row: dict[str, Any], mapping: Mapping) -> Record:
    chosen = _side(_need(row, "chosen", "preference"), mapping, "chosen")
    rejected = _side(_need(row, "rejected", "preference"), mapping, "rejected")
    shared = _shared_prefix(chosen, rejected)
    prefix, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    if "prompt" in row:
        prompt = row["prompt"]
        messages = _side(prompt, mapping, "prompt") if not isinstance(prompt, str) else [
            Message(role="user", content=prompt)]  # fmt: skip
        if prefix and not (len(prefix) == len(messages) and all(map(_same, prefix, messages))):
            messages = prefix  # the sides carry the whole conversation: trust them
    elif "conversations" in row or "messages" in row:
        column = "conversations" if "conversations" in row else "messages"
        messages = to_messages(row[column], mapping, column)
    elif prefix:
        messages = prefix
    else:
        raise RowProblem(
            "missing_column",
            "missing the prompt: a preference row needs `prompt`, `conversations` or `messages`, "
            "or chosen/rejected conversations that start with the same user turn",
            "Add a `prompt` column, or map yours with --map YOURCOLUMN=prompt",
        )
    if not messages or messages[0].role != "system":
        messages = _system(row) + messages
    return Record(messages=messages, chosen=chosen, rejected=rejected, tools=_tools(row))


#: Column names public classification sets use (GLUE, IMDB, SST, tweet_eval ...), tried in
#: order when the canonical ``text``/``text_pair``/``label`` are absent.
LABELED_COLUMNS: dict[str, tuple[str, ...]] = {
    "text": ("text", "sentence", "sentence1", "premise", "question", "review", "content", "document"),
    "text_pair": ("text_pair", "sentence2", "hypothesis"),
    "label": ("label", "labels", "target", "score", "class", "category", "sentiment"),
}


def _column(row: dict[str, Any], field: str) -> str | None:
    return next((name for name in LABELED_COLUMNS[field] if row.get(name) not in (None, "")), None)


def _labeled(row: dict[str, Any], mapping: Mapping) -> Record:
    """A text (or text pair) with its label, for classification and regression."""
    text_col, label_col = _column(row, "text"), _column(row, "label")
    for field, found in (("text", text_col), ("label", label_col)):
        if found is None:
            have = ", ".join(sorted(row)) or "none"
            raise RowProblem(
                "missing_column",
                f"missing the {field} column a classification or regression dataset needs (columns: {have})",
                f"Name it `{field}` (or {', '.join(LABELED_COLUMNS[field][1:4])}), or map yours with "
                f"dataset_mapping {{YOURCOLUMN: {field}}} (--map YOURCOLUMN={field})",
            )
    pair_col = _column(row, "text_pair")
    return Record(
        text=as_text(row[text_col], f"`{text_col}`"),
        text_pair=as_text(row[pair_col], f"`{pair_col}`") if pair_col else None,
        label=as_text(row[label_col], f"`{label_col}`").strip(),
    )


CONVERTERS: dict[str, Callable[[Any, Mapping], Record]] = {
    "alpaca": _alpaca,
    "sharegpt": lambda row, m: _conversation(row, m, "conversations", "sharegpt"),
    "openai": lambda row, m: _conversation(row, m, "messages", "openai"),
    "prompt_completion": _pair("prompt_completion"),
    "question_answer": _pair("question_answer"),
    "input_output": _pair("input_output"),
    "text": _text,
    "preference": _preference,
    "classification": _labeled,
}


def _blank(record: Record) -> bool:
    if record.text is not None:
        return not record.text.strip()
    turns = (record.messages or []) + (record.chosen or []) + (record.rejected or [])
    return all(not m.content.strip() and not m.tool_calls for m in turns)


def check_record(record: Record) -> None:
    """Problems that make a converted record unusable for training."""
    if _blank(record):
        raise RowProblem("empty_row", "the row is empty (no text in any field)",
                         f"Remove the row {REPAIR_HINT}, which drops empty rows")  # fmt: skip
    if record.kind in ("text", "labeled"):
        return
    sides = [("chosen", record.chosen), ("rejected", record.rejected)] if record.kind == "preference" \
        else [("conversation", record.messages)]  # fmt: skip
    for label, turns in sides:
        if not any(m.role == "assistant" for m in turns or []):
            raise RowProblem(
                "no_assistant_turn",
                f"the {label} has no assistant turn, so there is nothing to learn from it",
                "Add the assistant's reply, or map the reply tag with --map role:TAG=assistant",
            )


def convert_row(fmt: str, value: Any, mapping: Mapping) -> Record:
    """Convert one raw row (already read) into a checked ``Record``; raises ``RowProblem``."""
    if isinstance(value, dict):
        value = mapping.apply_columns(value)
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in value.values()):
            raise RowProblem("empty_row", "the row is empty (no text in any field)",
                             f"Remove the row {REPAIR_HINT}, which drops empty rows")  # fmt: skip
    elif not (isinstance(value, str) and fmt == "text"):
        raise RowProblem("bad_value", f"the row is a {type(value).__name__}, expected an object",
                         "Each row must be a JSON object (or a line of text for the text format)")  # fmt: skip
    record = CONVERTERS[fmt](value, mapping)
    check_record(record)
    return record
