"""The canonical record every dataset format is normalised into.

This is the contract between ``tunelab.datasets`` and the training engine: a
normalised dataset version is a JSONL file of ``Record`` objects. A record is a
conversation (``messages``), or a plain ``text`` for continued pretraining, plus
``chosen``/``rejected`` assistant replies when the row is a preference pair, or
a ``text`` (and optional ``text_pair``) with a ``label`` for classification and
regression (the label as written; the engine infers the label set or parses numbers).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    """A function the assistant asked to call; ``arguments`` is a JSON string."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: str = "{}"


class Message(BaseModel):
    """One turn. ``weight`` 0 excludes an assistant turn from the loss (OpenAI's field)."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str = ""
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    weight: float | None = Field(default=None, ge=0, le=1)


class Record(BaseModel):
    """One normalised training example."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message] | None = None
    text: str | None = None
    chosen: list[Message] | None = None
    rejected: list[Message] | None = None
    tools: str | None = Field(default=None, description="JSON list of tool schemas offered.")
    text_pair: str | None = Field(default=None, description="Second text of a pair (labeled rows only).")
    label: str | None = Field(default=None, description="Class name or number (labeled rows only).")

    @property
    def kind(self) -> Literal["chat", "text", "preference", "labeled"]:
        if self.label is not None:
            return "labeled"
        if self.chosen is not None or self.rejected is not None:
            return "preference"
        return "text" if self.text is not None else "chat"

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)
