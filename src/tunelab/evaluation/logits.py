"""Metrics from the model's logits on the reference reply: token accuracy, eval loss, perplexity.

The reference is teacher-forced: prompt and reference are encoded exactly as
the engine trains on them (``training.encoding.encode_record``, loss only on
the assistant reply) and batched by the engine's ``make_batch``, so the eval
loss here is the same quantity as the training and eval loss of a job; the
perplexity is the engine's ``perplexity``. Token accuracy is the share of
reference tokens whose top logit is that token.
"""

from __future__ import annotations

from typing import Any

from tunelab.datasets.records import Message, Record
from tunelab.evaluation.rows import EvalRow
from tunelab.training.batching import make_batch
from tunelab.training.encoding import IGNORE, encode_record
from tunelab.training.evaluate import perplexity


def _record(row: EvalRow) -> Record:
    messages = [Message(role=m["role"], content=m["content"]) for m in row.messages]
    return Record(messages=[*messages, Message(role="assistant", content=row.reference)])


def measure_logits(model: Any, tokenizer: Any, rows: list[EvalRow], *, max_length: int = 2048,
                   batch_size: int = 8) -> tuple[dict[str, float], list[dict[str, float]]]:  # fmt: skip
    """(totals, per-row) token_accuracy, eval_loss and perplexity of ``model`` on the references."""
    import torch
    import torch.nn.functional as F

    encoded = [encode_record(_record(r), tokenizer, system_prompt=None, train_on_prompt=False,
                             max_length=max_length) for r in rows]  # fmt: skip
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    device = next(model.parameters()).device
    per_row: list[dict[str, float]] = []
    loss_total, right_total, count_total = 0.0, 0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(encoded), batch_size):
                chunk = encoded[start : start + batch_size]
                batch = make_batch(chunk, packing=False, max_length=max_length, pad_id=pad)
                logits = model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device),
                               use_cache=False).logits.float()  # fmt: skip
                targets = batch.targets.to(device)
                for i in range(len(chunk)):
                    mask = targets[i] != IGNORE
                    n = int(mask.sum())
                    if n == 0:
                        per_row.append({})
                        continue
                    row_logits, row_targets = logits[i][mask], targets[i][mask]
                    loss = float(F.cross_entropy(row_logits, row_targets, reduction="sum"))
                    right = int((row_logits.argmax(-1) == row_targets).sum())
                    loss_total, right_total, count_total = loss_total + loss, right_total + right, count_total + n
                    per_row.append({"token_accuracy": round(100 * right / n, 4), "eval_loss": round(loss / n, 6),
                                    "perplexity": round(perplexity(loss / n), 4)})  # fmt: skip
    finally:
        model.train(was_training)
    if not count_total:
        return {}, per_row
    mean = loss_total / count_total
    totals = {"token_accuracy": round(100 * right_total / count_total, 4), "eval_loss": round(mean, 6),
              "perplexity": round(perplexity(mean), 4), "eval_tokens": float(count_total)}  # fmt: skip
    return totals, per_row
