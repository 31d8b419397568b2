"""Base against tuned: the same eval loss, perplexity and prompts, before and after.

The base side is measured before training starts (or with adapters disabled), so
no second copy of the model is ever loaded. Results are stored as
``output/evaluation.json``::

    {"base": {"eval_loss", "perplexity"}, "tuned": {...}, "samples": [{"prompt", "reference", "base", "tuned"}]}
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from tunelab.evaluation.generation import generate_replies
from tunelab.evaluation.loss import mean_loss, perplexity


def disabled_adapter(model: Any) -> Any:
    """Context in which a PEFT model behaves as its base model."""
    if hasattr(model, "disable_adapter"):
        return model.disable_adapter()
    return contextlib.nullcontext()


def sample_conversations(
    records: list[Any], tokenizer: Any, system_prompt: str | None, extra_prompts: list[str], limit: int
) -> list[dict[str, Any]]:
    """Prompts for generations: the configured ones, then the first eval rows."""
    from tunelab.training.encoding import conversation, prompt_messages

    samples: list[dict[str, Any]] = []
    for text in extra_prompts:
        messages = [{"role": "user", "content": text}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        samples.append({"messages": messages, "reference": None})
    for record in records:
        if len(samples) >= limit + len(extra_prompts):
            break
        messages = prompt_messages(record, tokenizer, system_prompt)
        if messages is None:
            continue
        full, _ = conversation(record, tokenizer, system_prompt)
        reference = full[len(messages)]["content"] if len(full) > len(messages) else None
        samples.append({"messages": messages, "reference": reference})
    return samples


def measure(
    model: Any,
    tokenizer: Any,
    examples: list[Any],
    samples: list[dict[str, Any]],
    make_batch: Callable[[list[Any]], Any],
    fast: bool,
    autocast: Callable[[], Any],
    max_new_tokens: int,
) -> dict[str, Any]:
    """Eval loss, perplexity and greedy replies of the model as it is now."""
    loss, tokens = mean_loss(model, examples, make_batch, fast, autocast) if examples else (float("nan"), 0)
    replies = generate_replies(model, tokenizer, [s["messages"] for s in samples], max_new_tokens)
    return {"eval_loss": loss, "perplexity": perplexity(loss), "eval_tokens": tokens, "replies": replies}


def combine(base: dict[str, Any] | None, tuned: dict[str, Any], samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation.json document from the two measurements."""
    rows = []
    for i, sample in enumerate(samples):
        rows.append({
            "prompt": sample["messages"][-1]["content"],
            "reference": sample["reference"],
            "base": base["replies"][i] if base and i < len(base["replies"]) else None,
            "tuned": tuned["replies"][i] if i < len(tuned["replies"]) else None,
        })
    strip = lambda m: {k: v for k, v in m.items() if k != "replies"}  # noqa: E731
    result = {"base": strip(base) if base else None, "tuned": strip(tuned), "samples": rows}
    if base and base["eval_loss"] == base["eval_loss"] and tuned["eval_loss"] == tuned["eval_loss"]:
        result["eval_loss_change"] = tuned["eval_loss"] - base["eval_loss"]
    return result
