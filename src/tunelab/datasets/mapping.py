"""The user's column and role mapping, and how it is written on the command line.

Syntax (each ``--map`` takes one rule; rules combine):

- ``SOURCE=FIELD``: the column ``SOURCE`` holds the canonical field ``FIELD``,
  e.g. ``--map prompt=instruction --map answer=output``.
- ``role:TAG=ROLE``: the role tag ``TAG`` in conversations means ``ROLE``
  (``system``, ``user``, ``assistant``, ``tool`` or ``function_call``), e.g.
  ``--map role:bot=assistant``.
- ``key:SOURCE=KEY``: messages store ``KEY`` (``from``, ``value``, ``role``,
  ``content``, ``name``, ``tool_calls``, ``weight``) under ``SOURCE``, e.g.
  ``--map key:speaker=from --map key:text=value``.

The mapping is saved with every dataset version so a conversion can be
repeated exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunelab.errors import DatasetError

FIELDS = (
    "instruction", "input", "output", "system", "history", "conversations", "messages",
    "prompt", "completion", "question", "answer", "text", "chosen", "rejected", "tools",
    "text_pair", "label",
)  # fmt: skip
ROLE_TARGETS = ("system", "user", "assistant", "tool", "function_call")
KEY_TARGETS = ("from", "value", "role", "content", "name", "tool_calls", "weight")


class Mapping(BaseModel):
    """Column renames, role tag meanings and message key renames, applied before conversion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, str] = Field(default_factory=dict, description="Source column -> canonical field.")
    roles: dict[str, str] = Field(default_factory=dict, description="Role tag -> canonical role.")
    keys: dict[str, str] = Field(default_factory=dict, description="Message key -> canonical key.")

    def is_empty(self) -> bool:
        return not (self.columns or self.roles or self.keys)

    def rules(self) -> list[str]:
        """The mapping written back as ``--map`` rules."""
        return (
            [f"{src}={dst}" for src, dst in self.columns.items()]
            + [f"role:{src}={dst}" for src, dst in self.roles.items()]
            + [f"key:{src}={dst}" for src, dst in self.keys.items()]
        )

    def apply_columns(self, row: dict[str, Any]) -> dict[str, Any]:
        if not self.columns:
            return row
        out = {key: value for key, value in row.items() if key not in self.columns}
        for src, dst in self.columns.items():
            if src in row:
                out[dst] = row[src]
        return out

    def apply_keys(self, message: dict[str, Any]) -> dict[str, Any]:
        if not self.keys:
            return message
        return {self.keys.get(key, key): value for key, value in message.items()}


def _bad(rule: str, why: str) -> DatasetError:
    return DatasetError(
        f"invalid mapping rule {rule!r}: {why}",
        "Write SOURCE=FIELD, role:TAG=ROLE or key:SOURCE=KEY; see `tunelab datasets inspect --help`",
        code="bad_mapping",
    )


def _add_rule(rule: str, target: dict[str, dict[str, str]]) -> None:
    left, sep, right = rule.partition("=")
    left, right = left.strip(), right.strip()
    if not sep or not left or not right:
        raise _bad(rule, "expected one '='")
    kind, colon, name = left.partition(":")
    if colon and kind in ("role", "key"):
        allowed = ROLE_TARGETS if kind == "role" else KEY_TARGETS
        if right not in allowed:
            raise _bad(rule, f"{right!r} is not one of {', '.join(allowed)}")
        target["roles" if kind == "role" else "keys"][name] = right
        return
    if right not in FIELDS:
        raise _bad(rule, f"{right!r} is not a dataset field ({', '.join(FIELDS)})")
    target["columns"][left] = right


def parse_mapping(spec: Mapping | dict[str, str] | Iterable[str] | None) -> Mapping:
    """Build a ``Mapping`` from rules (``["prompt=instruction"]``), a dict or a Mapping."""
    if spec is None:
        return Mapping()
    if isinstance(spec, Mapping):
        return spec
    if isinstance(spec, str):
        spec = [spec]
    rules = [f"{k}={v}" for k, v in spec.items()] if isinstance(spec, dict) else list(spec)
    target: dict[str, dict[str, str]] = {"columns": {}, "roles": {}, "keys": {}}
    for rule in rules:
        _add_rule(str(rule), target)
    return Mapping(**target)
