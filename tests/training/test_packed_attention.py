"""``sdpa_packed``: the same numbers as masked SDPA, gradients included, in fp32 and bf16."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.training.batching import make_batch
from tunelab.training.encoding import IGNORE, Encoded
from tunelab.training.loss import loss_sum
from tunelab.training.packed_attention import register, sequence_spans


def test_sequence_spans_split_where_positions_restart() -> None:
    import torch

    pos = torch.tensor([[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 4, 5]])
    assert sequence_spans(pos, 2, 6) == [[(0, 3), (3, 5), (5, 6)], [(0, 6)]]
    assert sequence_spans(torch.arange(6)[None], 3, 6) is None  # nothing packed: plain SDPA
    assert sequence_spans(None, 1, 6) is None
    assert sequence_spans(pos, 2, 5) is None  # not this attention's positions


def _examples() -> list[Encoded]:
    import random

    rng = random.Random(7)
    out = []
    for _ in range(9):
        ids = [rng.randint(3, 300) for _ in range(rng.randint(6, 50))]
        out.append(Encoded(ids, [IGNORE] * 3 + ids[3:]))
    return out


def _loss_and_grads(tiny_model_dir: Path, attention: str, dtype_name: str) -> tuple[float, list]:
    import torch
    from transformers import AutoModelForCausalLM

    register()
    dtype = getattr(torch, dtype_name)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attention, dtype=dtype)
    batch = make_batch(_examples(), packing=True, max_length=96, pad_id=0)
    assert batch.input_ids.shape[0] > 1 and batch.position_ids is not None
    loss = loss_sum(model, batch, True)
    loss.backward()
    grads = [p.grad.float().clone() for p in model.parameters() if p.grad is not None]
    return float(loss.detach()), grads


@pytest.mark.parametrize(("dtype", "tol"), [("float32", 1e-4), ("bfloat16", 3e-2)])
def test_packed_attention_matches_masked_sdpa(tiny_model_dir: Path, dtype: str, tol: float) -> None:
    import torch

    loss, grads = _loss_and_grads(tiny_model_dir, "sdpa", dtype)
    packed_loss, packed_grads = _loss_and_grads(tiny_model_dir, "sdpa_packed", dtype)
    assert packed_loss == pytest.approx(loss, rel=tol)
    assert len(grads) == len(packed_grads) > 0
    for ours, theirs in zip(packed_grads, grads, strict=True):
        scale = float(theirs.abs().max()) or 1.0
        torch.testing.assert_close(ours / scale, theirs / scale, rtol=tol, atol=tol)


def test_soft_capped_attention_falls_back_to_eager(tiny_model_dir: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from tunelab.training.config import TrainConfig
    from tunelab.training.hardware import detect_hardware
    from tunelab.training.modeling import load_base_model

    capped = tmp_path / "capped"
    shutil.copytree(tiny_model_dir, capped)
    config_file = capped / "config.json"
    config_file.write_text(json.dumps(json.loads(config_file.read_text()) | {"attn_logit_softcapping": 50.0}))
    for folder, wanted in ((tiny_model_dir, "sdpa_packed"), (capped, "eager")):
        train = TrainConfig(model=str(folder), dataset="unused.jsonl", device="cpu")
        hw = detect_hardware(train)
        model = load_base_model(folder, train, hw)
        assert hw.attention == wanted == model.config._attn_implementation
