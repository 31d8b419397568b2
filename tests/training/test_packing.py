"""Packing: the same loss as one-sequence-at-a-time, and no attention across sequences."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.training.batching import make_batch, pack_rows
from tunelab.training.encoding import IGNORE, Encoded
from tunelab.training.loss import loss_sum


def _examples(n: int, seed: int = 0) -> list[Encoded]:
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(5, 40)
        ids = [rng.randint(3, 300) for _ in range(length)]
        split = rng.randint(1, length - 2)
        out.append(Encoded(ids, [IGNORE] * split + ids[split:]))
    return out


@pytest.fixture(scope="module", params=["sdpa", "sdpa_packed"])
def model(tiny_model_dir: Path, request: pytest.FixtureRequest):
    from transformers import AutoModelForCausalLM

    from tunelab.training.packed_attention import register

    register()
    m = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=request.param)
    return m.eval()


def test_pack_rows_fill_without_overflow() -> None:
    lengths = [50, 40, 30, 30, 20, 10, 60, 5]
    rows = pack_rows(lengths, max_length=100)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 100 for row in rows)
    assert len(rows) == 3  # 245 tokens -> ceil(245/100) rows


@pytest.mark.parametrize("fast", [True, False])
def test_packed_loss_equals_unpacked_loss(model, fast: bool) -> None:
    import torch

    examples = _examples(12)
    packed = make_batch(examples, packing=True, max_length=128, pad_id=0)
    assert packed.input_ids.shape[0] < len(examples)  # several sequences share rows
    with torch.no_grad():
        total = float(loss_sum(model, packed, True))
        singles = sum(float(loss_sum(model, make_batch([e], packing=False, max_length=128, pad_id=0), fast))
                      for e in examples)
        padded = float(loss_sum(model, make_batch(examples, packing=False, max_length=128, pad_id=0), fast))
    assert packed.n_targets == sum(e.target_tokens - int(e.labels[0] != IGNORE) for e in examples)
    assert total == pytest.approx(singles, rel=1e-4)
    assert padded == pytest.approx(singles, rel=1e-4)


def test_packed_sequences_do_not_attend_to_each_other(model) -> None:
    import torch

    a, b = _examples(2, seed=3)
    changed = Encoded([7] * len(a.input_ids), a.labels)  # a different first sequence
    with torch.no_grad():
        one = make_batch([a, b], packing=True, max_length=256, pad_id=0)
        two = make_batch([changed, b], packing=True, max_length=256, pad_id=0)
        assert one.input_ids.shape[0] == 1
        kwargs = {"use_cache": False}
        out1 = model(input_ids=one.input_ids, position_ids=one.position_ids, **kwargs).logits
        out2 = model(input_ids=two.input_ids, position_ids=two.position_ids, **kwargs).logits
    # b's logits sit after the longer sequence; find them by b's start in each row
    start1 = len(a.input_ids) if len(a.input_ids) >= len(b.input_ids) else 0
    n = len(b.input_ids)
    torch.testing.assert_close(out1[0, start1 : start1 + n], out2[0, start1 : start1 + n], rtol=1e-4, atol=1e-4)
