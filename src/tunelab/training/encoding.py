"""Turn records into token ids and labels, with the loss only where it belongs.

A conversation is rendered once with the model's chat template; the spans of the
assistant replies are found by rendering the conversation's prefixes
incrementally (with and without the generation prompt) and comparing character
offsets, so the assistant header is never trained on but the reply and its
end-of-turn token are. This works for any template whose renders of prefixes are
prefixes of the full render, which is true of the common ones (ChatML, Llama 3,
Mistral, Gemma). Plain-text records (continued pretraining) train on every token
and end with EOS. Truncation is counted by the caller and reported, never silent.

This is the one chat rendering of the project: the dataset report counts and
previews records with ``render_chat`` / ``token_length`` (through
``tunelab.training.token_report``), and generation prompts for chat and for the
engine's sample replies come from ``render_prompt``, so what is counted, trained
on and prompted with is the same text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tunelab.datasets.records import Message, Record

IGNORE = -100


@dataclass
class Encoded:
    """One tokenised example; ``labels`` holds IGNORE where no loss is taken."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    @property
    def target_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def _template(tokenizer: Any) -> str:
    template = getattr(tokenizer, "chat_template", None)
    return template if isinstance(template, str) else ""


def _message_dict(message: Message, tools_native: bool) -> dict[str, Any]:
    """One message as the template expects it; tool calls become text if unsupported."""
    content = message.content
    out: dict[str, Any] = {"role": message.role, "content": content}
    if message.tool_calls:
        if tools_native:
            out["tool_calls"] = [
                {"type": "function", "function": {"name": c.name, "arguments": json.loads(c.arguments or "{}")}}
                for c in message.tool_calls
            ]
        else:
            calls = "\n".join(
                f'<tool_call>{{"name": {json.dumps(c.name)}, "arguments": {c.arguments}}}</tool_call>'
                for c in message.tool_calls
            )
            out["content"] = f"{content}\n{calls}".strip()
    if message.role == "tool" and not tools_native:
        out = {"role": "user", "content": f"<tool_response>{content}</tool_response>"}
    return out


def conversation(record: Record, tokenizer: Any, system_prompt: str | None) -> tuple[list[dict[str, Any]], list[float]]:
    """Messages ready for ``apply_chat_template`` plus each one's loss weight."""
    template = _template(tokenizer)
    tools_native = "tool" in template
    messages = list(record.messages or [])
    if record.chosen:  # a preference pair trains on its chosen reply in SFT
        messages = messages + list(record.chosen)
    rendered = [_message_dict(m, tools_native) for m in messages]
    weights = [1.0 if m.weight is None else m.weight for m in messages]
    if record.tools and not tools_native:
        note = f"You can call these tools; answer with <tool_call> JSON.\n{record.tools}"
        if rendered and rendered[0]["role"] == "system":
            rendered[0]["content"] = f"{rendered[0]['content']}\n\n{note}"
        else:
            rendered.insert(0, {"role": "system", "content": note})
            weights.insert(0, 0.0)
    if system_prompt and not (rendered and rendered[0]["role"] == "system"):
        rendered.insert(0, {"role": "system", "content": system_prompt})
        weights.insert(0, 0.0)
    return rendered, weights


def _render(tokenizer: Any, messages: list[dict[str, Any]], tools: Any, generation: bool) -> str:
    if not messages:
        return ""
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": generation}
    if tools is not None:
        kwargs["tools"] = tools
    return str(tokenizer.apply_chat_template(messages, **kwargs))


def _template_tools(record: Record, tokenizer: Any) -> Any:
    """The record's tool schemas for a template that renders them itself, else None (they are in the system turn)."""
    return json.loads(record.tools) if record.tools and "tool" in _template(tokenizer) else None


def render_chat(record: Record, tokenizer: Any, *, system_prompt: str | None = None) -> str:
    """The whole conversation exactly as the engine tokenises it (tool calls and tools included).

    The dataset report counts and previews this text too, so its token counts are
    the ones training sees, tool-call rows included.
    """
    messages, _ = conversation(record, tokenizer, system_prompt)
    return _render(tokenizer, messages, _template_tools(record, tokenizer), False)


def encode_chat(
    record: Record, tokenizer: Any, *, system_prompt: str | None, train_on_prompt: bool, max_length: int
) -> Encoded:
    """Render a conversation and label the assistant replies (or everything)."""
    messages, weights = conversation(record, tokenizer, system_prompt)
    tools = _template_tools(record, tokenizer)
    full = _render(tokenizer, messages, tools, False)
    spans: list[tuple[int, int]] = []
    for k, (message, weight) in enumerate(zip(messages, weights, strict=True)):
        trained = (message["role"] == "assistant" and weight > 0) or (
            train_on_prompt and message["role"] != "assistant"
        )
        if not trained:
            continue
        start = len(_render(tokenizer, messages[:k], tools, message["role"] == "assistant"))
        end = len(_render(tokenizer, messages[: k + 1], tools, False))
        if message["role"] != "assistant":
            start = len(_render(tokenizer, messages[:k], tools, False))
        spans.append((min(start, len(full)), min(end, len(full))))
    encoding = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoding["input_ids"])
    labels = [IGNORE] * len(ids)
    for i, (char_start, _char_end) in enumerate(encoding["offset_mapping"]):
        if any(start <= char_start < end for start, end in spans):
            labels[i] = ids[i]
    return _truncate(ids, labels, max_length)


def _text_ids(record: Record, tokenizer: Any) -> list[int]:
    ids = list(tokenizer(record.text or "", add_special_tokens=True)["input_ids"])
    if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids.append(tokenizer.eos_token_id)
    return ids


def encode_text(record: Record, tokenizer: Any, *, max_length: int) -> Encoded:
    """Plain text for continued pretraining: every token is a target, EOS at the end."""
    ids = _text_ids(record, tokenizer)
    return _truncate(ids, list(ids), max_length)


def _truncate(ids: list[int], labels: list[int], max_length: int) -> Encoded:
    if len(ids) <= max_length:
        return Encoded(ids, labels)
    return Encoded(ids[:max_length], labels[:max_length], truncated=True)


def encode_record(
    record: Record, tokenizer: Any, *, system_prompt: str | None, train_on_prompt: bool, max_length: int
) -> Encoded:
    """Encode any record kind; plain text or a conversation."""
    if record.kind == "text":
        return encode_text(record, tokenizer, max_length=max_length)
    return encode_chat(
        record, tokenizer, system_prompt=system_prompt, train_on_prompt=train_on_prompt, max_length=max_length
    )


def token_length(record: Record, tokenizer: Any, *, system_prompt: str | None = None) -> int:
    """How many tokens ``encode_record`` produces for ``record`` before truncation.

    One render and one tokenisation (no label spans), so a dataset report can
    afford it on every row and still give the engine's exact number.
    """
    if record.kind == "text":
        return len(_text_ids(record, tokenizer))
    full = render_chat(record, tokenizer, system_prompt=system_prompt)
    return len(tokenizer(full, add_special_tokens=False)["input_ids"])


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    """A generation prompt for ``messages``, ending where the assistant's reply starts.

    The chat template with its generation prompt, as in training, because a
    fine-tuned model only answers like it was trained when the prompt is rendered
    the same way; plain ``role: content`` lines for base models without a template.
    """
    if getattr(tokenizer, "chat_template", None):
        return _render(tokenizer, list(messages), None, True)
    lines = [f"{message['role']}: {message['content']}" for message in messages]
    return "\n".join([*lines, "assistant:"])


def prompt_messages(record: Record, tokenizer: Any, system_prompt: str | None) -> list[dict[str, Any]] | None:
    """The conversation up to (not including) its last assistant reply, for generation."""
    messages, _ = conversation(record, tokenizer, system_prompt)
    while messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    return messages if any(m["role"] == "user" for m in messages) else None


def render_source(messages: list[dict[str, Any]]) -> str:
    """The encoder input of a seq2seq model for ``messages`` (the conversation before the reply).

    One user turn is its text as written (T5's "prompt -> target"); a longer
    conversation becomes ``role: content`` lines; a system message leads,
    separated by a blank line. Training sources and chat prompts of an
    encoder-decoder both come from here, so they are the same text.
    """
    system = [str(m["content"]) for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    if len(turns) == 1 and turns[0]["role"] == "user":
        body = str(turns[0]["content"])
    else:
        body = "\n".join(f"{m['role']}: {m['content']}" for m in turns)
    return "\n\n".join([*system, body]) if system else body
