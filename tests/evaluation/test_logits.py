"""Token accuracy, eval loss and perplexity from ``measure_logits`` equal a direct computation from the logits.

The direct computation runs the model on each row alone (no batch, no
padding) and compares, position by position, the top logit with the next
reference token, counting only the positions the engine takes loss on. One
reference is the model's own greedy reply (its tokens are mostly its top
tokens) and one is text the random model does not predict, so the accuracy is
neither 0 nor 100 and an off-by-one shift or a padded position would change it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tunelab.datasets.records import Message, Record
from tunelab.evaluation.logits import measure_logits
from tunelab.evaluation.rows import EvalRow
from tunelab.training.encoding import IGNORE, encode_record, render_prompt


def _by_hand(model, tokenizer, row: EvalRow) -> tuple[int, int, float]:  # type: ignore[no-untyped-def]
    """(right, counted, summed cross-entropy) of one row, from its own unpadded forward pass."""
    import torch

    messages = [Message(role=m["role"], content=m["content"]) for m in row.messages]
    encoded = encode_record(Record(messages=[*messages, Message(role="assistant", content=row.reference)]),
                            tokenizer, system_prompt=None, train_on_prompt=False, max_length=2048)  # fmt: skip
    ids = torch.tensor([encoded.input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    right, counted, loss = 0, 0, 0.0
    for t in range(len(encoded.input_ids) - 1):
        wanted = encoded.labels[t + 1]  # logits at t predict token t + 1
        if wanted == IGNORE:
            continue
        counted += 1
        right += int(int(logits[t].argmax()) == wanted)
        loss -= float(torch.log_softmax(logits[t], -1)[wanted])
    return right, counted, loss


def test_token_accuracy_equals_a_direct_computation_from_logits(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    question = [{"role": "user", "content": "Say the number 7."}]
    prompt = tokenizer(render_prompt(tokenizer, question), return_tensors="pt", add_special_tokens=False,
                       return_token_type_ids=False)
    greedy = model.generate(**prompt, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    own = tokenizer.decode(greedy[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    rows = [EvalRow(question, own), EvalRow([{"role": "user", "content": "And a longer one, please?"}],
                                            "Zebras quietly juggle seventeen purple umbrellas at dawn.")]  # fmt: skip
    totals, per_row = measure_logits(model, tokenizer, rows, batch_size=2)  # one padded batch of both rows
    hand = [_by_hand(model, tokenizer, row) for row in rows]
    for (right, counted, loss), measured in zip(hand, per_row, strict=True):
        assert measured["token_accuracy"] == pytest.approx(100 * right / counted, abs=1e-3)
        assert measured["eval_loss"] == pytest.approx(loss / counted, rel=1e-4)
    right = sum(h[0] for h in hand)
    counted = sum(h[1] for h in hand)
    assert totals["eval_tokens"] == counted
    assert totals["token_accuracy"] == pytest.approx(100 * right / counted, abs=1e-3)
    assert totals["perplexity"] == pytest.approx(math.exp(sum(h[2] for h in hand) / counted), rel=1e-3)
    assert 0 < totals["token_accuracy"] < 100, (own, hand)  # the greedy row scores, the other does not
