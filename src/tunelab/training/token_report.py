"""Token counts for the dataset report, taken from the engine's own rendering.

The report's numbers are only useful if they are the ones training sees: a row
the report calls 900 tokens must not be truncated at ``max_length`` 1024. So a
record is counted by ``tunelab.training.encoding.token_length``, the length
``encode_record`` gives it before truncation (tool calls and tool schemas
rendered as the engine renders them, EOS on plain text), and previewed with
``render_chat``. ``tunelab.datasets`` cannot import the engine (it sits below
it), so callers that have a tokenizer build a counter here and hand it to
``inspect_file(counter=...)``; without one, the datasets part's labelled regex
approximation is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.datasets.records import Record
from tunelab.datasets.tokens import ApproxCounter, TokenCounter, plain_lines
from tunelab.training.encoding import render_chat, token_length


class EngineCounter:
    """Exact counts with a Hugging Face tokenizer, equal to the engine's tokenisation.

    A tokenizer without a chat template cannot encode conversations for
    training; those are counted over the plain ``role: content`` rendering so a
    base model's tokenizer still gives a report. A row its template rejects is
    counted the same way rather than failing the whole inspection (inspection
    never raises for a bad dataset); training would report that row itself.
    """

    approximate = False

    def __init__(self, tokenizer: Any, name: str | None = None, *, system_prompt: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.name = name or getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        self.system_prompt = system_prompt
        self.has_template = bool(getattr(tokenizer, "chat_template", None))

    def _plain(self, record: Record) -> str:
        return plain_lines(list(record.messages or []) + list(record.chosen or []))

    def render(self, record: Record) -> str:
        if record.kind == "text":
            return record.text or ""
        if self.has_template:
            try:
                return render_chat(record, self.tokenizer, system_prompt=self.system_prompt)
            except Exception:  # a template that rejects this row's shape
                pass
        return self._plain(record)

    def count(self, record: Record) -> int:
        if record.kind == "text" or self.has_template:
            try:
                return token_length(record, self.tokenizer, system_prompt=self.system_prompt)
            except Exception:  # a template that rejects this row's shape
                pass
        return len(self.tokenizer(self._plain(record), add_special_tokens=False)["input_ids"])


def load_report_tokenizer(name_or_path: str | Path) -> Any:
    """The tokenizer for a model folder, GGUF file or folder, or cached Hub name, as published.

    Loading is the model runtime's job (``tunelab.models.loading``); the pad
    token does not matter for counting, so it is left as the model ships it.
    """
    from tunelab.models.loading import load_tokenizer

    return load_tokenizer(name_or_path, pad_fallback=False)


def make_counter(tokenizer: Any = None, *, system_prompt: str | None = None) -> TokenCounter:
    """A counter for a tokenizer object, a model path or name, or None (the regex approximation).

    ``system_prompt`` is the run's ``system_prompt`` setting, which the engine
    adds to conversations that have none.
    """
    if tokenizer is None:
        return ApproxCounter()
    if isinstance(tokenizer, str | Path):
        return EngineCounter(load_report_tokenizer(tokenizer), name=str(tokenizer), system_prompt=system_prompt)
    return EngineCounter(tokenizer, system_prompt=system_prompt)
