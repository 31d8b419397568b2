"""Turning one message as users write it into a canonical ``Message``.

Both conversation styles are accepted everywhere: sharegpt's ``from``/``value``
and OpenAI's ``role``/``content``. Role tags resolve through the user's mapping
first, then the known tags below; a ``function_call`` turn becomes an assistant
message whose ``tool_calls`` are parsed from its JSON value, and an
``observation`` becomes a ``tool`` message.
"""

from __future__ import annotations

import json
from typing import Any

from tunelab.datasets.issues import RowProblem
from tunelab.datasets.mapping import Mapping
from tunelab.datasets.records import Message, ToolCall

KNOWN_ROLES: dict[str, str] = {
    "system": "system",
    "developer": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bot": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "assistant": "assistant",
    "function_call": "function_call",
    "observation": "tool",
    "tool": "tool",
    "function": "tool",
}


def as_text(value: Any, what: str) -> str:
    """A field's text: strings as they are, numbers as written, text parts joined."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        return "".join(str(p.get("text", "")) for p in value if p.get("type", "text") == "text")
    raise RowProblem(
        "bad_value",
        f"{what} is a {type(value).__name__}, expected text",
        f"Make {what} a string (or map the right column with --map)",
    )


def _arguments(value: Any) -> str:
    if value is None:
        return "{}"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _one_call(item: Any) -> ToolCall:
    if isinstance(item, dict) and isinstance(item.get("function"), dict):
        item = item["function"]  # OpenAI shape: {"type": "function", "function": {...}}
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ValueError("no name")
    return ToolCall(name=item["name"], arguments=_arguments(item.get("arguments")))


def parse_tool_calls(value: Any, where: str) -> list[ToolCall]:
    """Tool calls from a JSON string or objects: ``{name, arguments}`` or OpenAI's shape."""
    try:
        if isinstance(value, str):
            value = json.loads(value)
        items = value if isinstance(value, list) else [value]
        return [_one_call(item) for item in items]
    except (ValueError, TypeError):
        raise RowProblem(
            "bad_tool_call",
            f"{where} is not a tool call: expected JSON {{\"name\": ..., \"arguments\": {{...}}}}",
            "Write function_call turns as JSON objects with `name` and `arguments`",
        ) from None


def resolve_role(tag: Any, mapping: Mapping, where: str) -> str:
    if not isinstance(tag, str):
        raise RowProblem(
            "missing_column",
            f"{where} has no role (`from` or `role`)",
            "Give every message a `from` or `role`, or map your key with --map key:YOURKEY=from",
        )
    role = mapping.roles.get(tag) or KNOWN_ROLES.get(tag) or KNOWN_ROLES.get(tag.lower())
    if role is None:
        raise RowProblem(
            "unknown_role",
            f"{where} has unknown role {tag!r}",
            f"Map it to a known role, e.g. --map role:{tag}=assistant "
            "(known: system, user/human, assistant/gpt, tool/observation, function_call)",
        )
    return role


def to_message(raw: Any, mapping: Mapping, where: str, default_role: str | None = None) -> Message:
    """One canonical message from a dict in either style (or a bare string with a default role)."""
    if isinstance(raw, str) and default_role is not None:
        return Message(role=default_role, content=raw)  # type: ignore[arg-type]
    if not isinstance(raw, dict):
        raise RowProblem(
            "bad_value",
            f"{where} is a {type(raw).__name__}, expected an object with role and content",
            "Write messages as {\"role\": ..., \"content\": ...} or {\"from\": ..., \"value\": ...}",
        )
    raw = mapping.apply_keys(raw)
    tag = raw.get("role", raw.get("from", default_role))
    role = resolve_role(tag, mapping, where)
    content = as_text(raw.get("content", raw.get("value")), f"{where} content")
    tool_calls = None
    if role == "function_call":
        role, tool_calls, content = "assistant", parse_tool_calls(content, where), ""
    elif raw.get("tool_calls"):
        tool_calls = parse_tool_calls(raw["tool_calls"], f"{where} tool_calls")
    weight = raw.get("weight")
    if weight is not None and (not isinstance(weight, int | float) or not 0 <= weight <= 1):
        raise RowProblem("bad_value", f"{where} weight {weight!r} is not 0 or 1", "Use weight 0 or 1")
    name = raw.get("name")
    return Message(
        role=role,  # type: ignore[arg-type]
        content=content,
        name=name if isinstance(name, str) else None,
        tool_calls=tool_calls,
        weight=weight,
    )


def decode_json_cell(value: Any) -> Any:
    """A list or object written as JSON text (how CSV and spreadsheet cells hold them), decoded."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def to_messages(raw: Any, mapping: Mapping, what: str) -> list[Message]:
    """A conversation: a list of messages (a single message dict is accepted as a list of one)."""
    raw = decode_json_cell(raw)
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise RowProblem(
            "bad_value",
            f"`{what}` is a {type(raw).__name__}, expected a list of messages",
            f"Make `{what}` a JSON list of messages",
        )
    return [to_message(item, mapping, f"`{what}` message {i}") for i, item in enumerate(raw)]
