"""The engine's own measurement: eval loss, perplexity and base-versus-tuned sample replies.

A run measures itself during training (eval loss every ``eval_steps``) and at its
end (``output/evaluation.json``), so this lives in the engine rather than in
``tunelab.evaluation``, which sits above the engine and may build on it. The
base side is measured before training starts (or with adapters disabled), so no
second copy of the model is ever loaded. The document is::

    {"base": {"eval_loss", "perplexity", "eval_tokens"}, "tuned": {...},
     "samples": [{"prompt", "reference", "base", "tuned"}], "eval_loss_change"}

Eval loss uses the training loss code (logits only at target positions, the same
masks), so eval loss and training loss measure exactly the same thing; sample
replies are greedy, so they are deterministic by construction.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

from tunelab.models.generation import Sampling, generate, is_encoder_decoder
from tunelab.training.encoding import conversation, prompt_messages, render_prompt, render_source
from tunelab.training.loss import loss_sum


def mean_loss(
    model: Any,
    examples: list[Any],
    make_batch: Callable[[list[Any]], Any],
    fast: bool,
    autocast: Callable[[], Any],
    batch_size: int = 8,
) -> tuple[float, int]:
    """(mean token loss, number of target tokens) over ``examples``, in eval mode."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = make_batch(examples[start : start + batch_size])
            if batch.n_targets == 0:
                continue
            with autocast():
                total += float(loss_sum(model, batch, fast))
            count += batch.n_targets
    model.train(was_training)
    return (total / count if count else float("nan")), count


def perplexity(loss: float) -> float:
    """exp(loss), capped so a diverged run reports a large number instead of overflowing; NaN stays NaN."""
    return math.exp(min(loss, 50.0)) if loss == loss else float("nan")


def disabled_adapter(model: Any) -> Any:
    """Context in which a PEFT model behaves as its base model (the base side of the comparison)."""
    if hasattr(model, "disable_adapter"):
        return model.disable_adapter()
    return contextlib.nullcontext()


def sample_conversations(
    records: list[Any], tokenizer: Any, system_prompt: str | None, extra_prompts: list[str], limit: int
) -> list[dict[str, Any]]:
    """Prompts for generations: the configured ones, then the first eval rows (with their reference reply)."""
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


def generate_replies(
    model: Any, tokenizer: Any, conversations: list[list[dict[str, Any]]], max_new_tokens: int
) -> list[str]:
    """One greedy reply per conversation (already ending with a user turn), rendered as in training."""
    render = render_source if is_encoder_decoder(model) else lambda m: render_prompt(tokenizer, m)
    prompts = [render(messages) for messages in conversations]
    done = generate(model, tokenizer, prompts, Sampling(max_new_tokens=max_new_tokens, temperature=0.0))
    return [completion.text for completion in done]


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
    """The evaluation.json document from the two measurements (base is None when it could not be measured)."""
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


# ---- the other tasks: exact match (seq2seq), classification and regression metrics ----

EXACT_MATCH_ROWS = 32  # eval rows generated for exact match (greedy): enough to see a change, cheap on a CPU


def _normal(text: str | None) -> str:
    return " ".join((text or "").split())


def exact_match(
    model: Any, tokenizer: Any, records: list[Any], system_prompt: str | None, max_new_tokens: int
) -> dict[str, Any]:
    """Share of the first ``EXACT_MATCH_ROWS`` eval rows whose greedy reply equals the reference (spaces folded)."""
    from tunelab.training.task_data import seq2seq_parts

    pairs = [seq2seq_parts(r, system_prompt) for r in records[:EXACT_MATCH_ROWS]]
    pairs = [(prompt, target) for prompt, target in pairs if target]
    if not pairs:
        return {"exact_match": None, "exact_match_rows": 0}
    replies = generate_replies(model, tokenizer, [p for p, _ in pairs], max_new_tokens)
    hits = sum(_normal(reply) == _normal(target) for reply, (_, target) in zip(replies, pairs, strict=True))
    return {"exact_match": hits / len(pairs), "exact_match_rows": len(pairs)}


def predict(
    model: Any, examples: list[Any], make_batch: Callable[[list[Any]], Any], autocast: Callable[[], Any],
    batch_size: int = 16,
) -> tuple[float, list[Any]]:  # fmt: skip
    """(mean loss per example, predictions): class ids, or numbers for regression."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    total, out = 0.0, []
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = make_batch(examples[start : start + batch_size])
            kwargs = {} if batch.token_type_ids is None else {"token_type_ids": batch.token_type_ids}
            with autocast():
                logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **kwargs).logits
            logits = logits.float()  # the loss exactly as ``loss.task_loss_sum`` takes it
            if batch.task == "regression":
                total += float(F.mse_loss(logits.view(-1), batch.targets.float(), reduction="sum"))
                out += logits.view(-1).tolist()
            else:
                total += float(F.cross_entropy(logits, batch.targets, reduction="sum"))
                out += logits.argmax(-1).tolist()
    model.train(was_training)
    return (total / len(examples) if examples else float("nan")), out


def classification_metrics(predicted: list[int], truth: list[int], labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro F1, F1 per class and the confusion matrix (rows: true label, columns: predicted)."""
    n = len(labels)
    matrix = [[0] * n for _ in range(n)]
    for p, t in zip(predicted, truth, strict=True):
        matrix[t][p] += 1
    per_class = {}
    for i, name in enumerate(labels):
        tp = matrix[i][i]
        predicted_i = sum(matrix[r][i] for r in range(n))
        actual_i = sum(matrix[i])
        per_class[name] = 2 * tp / (predicted_i + actual_i) if predicted_i + actual_i else 0.0
    total = len(truth)
    return {
        "accuracy": sum(matrix[i][i] for i in range(n)) / total if total else None,
        "macro_f1": sum(per_class.values()) / n if n else None,
        "per_class_f1": per_class, "confusion_matrix": {"labels": labels, "matrix": matrix},
    }  # fmt: skip


def regression_metrics(predicted: list[float], truth: list[float]) -> dict[str, Any]:
    """Mean absolute error and root mean squared error."""
    if not truth:
        return {"mae": None, "rmse": None}
    errors = [p - t for p, t in zip(predicted, truth, strict=True)]
    return {"mae": sum(abs(e) for e in errors) / len(errors), "rmse": math.sqrt(sum(e * e for e in errors) / len(errors))}


def measure_labeled(
    model: Any, examples: list[Any], make_batch: Callable[[list[Any]], Any], autocast: Callable[[], Any],
    task: str, labels: list[str],
) -> dict[str, Any]:  # fmt: skip
    """Eval loss and the task's metrics for a classifier or regressor as it is now."""
    loss, predicted = predict(model, examples, make_batch, autocast)
    truth = [e.label for e in examples]
    metrics = regression_metrics(predicted, truth) if task == "regression" else \
        classification_metrics(predicted, truth, labels)  # fmt: skip
    return {"eval_loss": loss, "eval_examples": len(examples), **metrics}
