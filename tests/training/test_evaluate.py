"""The engine's own measurement: eval loss matches a direct computation, the comparison has both sides."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import pytest

from tunelab.training.batching import make_batch
from tunelab.training.encoding import IGNORE, Encoded
from tunelab.training.evaluate import (
    combine,
    generate_replies,
    mean_loss,
    perplexity,
    sample_conversations,
)


def test_mean_loss_equals_direct_cross_entropy(tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    examples = [Encoded([5, 6, 7, 8, 9], [IGNORE, IGNORE, 7, 8, 9]), Encoded([10, 11, 12], [IGNORE, 11, 12])]
    loss, tokens = mean_loss(model, examples, lambda ex: make_batch(ex, packing=True, max_length=64, pad_id=0),
                             True, contextlib.nullcontext)
    assert tokens == 5  # 3 targets (7, 8, 9) in the first, 2 (11, 12) in the second
    with torch.no_grad():
        total = 0.0
        for ex in examples:
            logits = model(torch.tensor([ex.input_ids])).logits[0]
            for i in range(len(ex.input_ids) - 1):
                if ex.labels[i + 1] != IGNORE:
                    total += float(torch.nn.functional.cross_entropy(logits[i], torch.tensor(ex.labels[i + 1])))
    assert math.isclose(loss, total / 5, rel_tol=1e-4)
    assert math.isclose(perplexity(loss), math.exp(loss))


def test_combine_pairs_base_and_tuned() -> None:
    samples = [{"messages": [{"role": "user", "content": "Who are you?"}], "reference": None}]
    base = {"eval_loss": 2.0, "perplexity": math.exp(2), "eval_tokens": 10, "replies": ["I am SmolLM."]}
    tuned = {"eval_loss": 1.5, "perplexity": math.exp(1.5), "eval_tokens": 10, "replies": ["I am Tuna."]}
    doc = combine(base, tuned, samples)
    assert doc["samples"] == [{"prompt": "Who are you?", "reference": None, "base": "I am SmolLM.",
                               "tuned": "I am Tuna."}]
    assert doc["eval_loss_change"] == -0.5 and "replies" not in doc["base"]


def test_sample_conversations_use_prompts_then_eval_rows(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from tunelab.datasets.records import Record

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [Record.model_validate({"messages": [{"role": "user", "content": f"q{i}"},
                                                {"role": "assistant", "content": f"a{i}"}]}) for i in range(5)]
    samples = sample_conversations(rows, tokenizer, "sys", ["Who are you?"], limit=2)
    assert [s["messages"][-1]["content"] for s in samples] == ["Who are you?", "q0", "q1"]
    assert samples[1]["reference"] == "a0" and samples[0]["messages"][0]["role"] == "system"


@pytest.mark.parametrize("attention", ["sdpa", "sdpa_packed"])
def test_sample_replies_are_batched_greedy_and_match_one_by_one(tiny_model_dir: Path, attention: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab.training.packed_attention import register

    register()  # the engine's CPU attention sees left-padded rows during generation
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attention)
    torch.manual_seed(1)
    with torch.no_grad():  # larger random weights, so replies differ per prompt
        for parameter in model.parameters():
            parameter.normal_(0, 0.3)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    conversations = [[{"role": "user", "content": text}] for text in ("Hi", "Give three tips for staying healthy.",
                                                                      "What is 2 + 2? Answer briefly, please.")]
    model.train()
    together = generate_replies(model, tokenizer, conversations, 6)  # one left-padded batch
    alone = [generate_replies(model, tokenizer, [c], 6)[0] for c in conversations]
    assert together == alone and len(set(together)) == 3 and all(together)
    assert model.training  # given back in training mode, mid-run
