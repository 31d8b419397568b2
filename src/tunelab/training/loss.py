"""Token-level cross-entropy that computes logits only where there are targets.

The language-model head is the single largest matmul of a small model (49k-word
vocabulary for SmolLM2), and prompt and padding positions need no logits at all.
The fast path runs the decoder body, keeps the hidden states of target positions
and applies the head to those alone, in fp32 for a stable softmax. Prompt-learning
methods (virtual tokens) and models with logit soft-capping take the plain
forward instead.
"""

from __future__ import annotations

from typing import Any

from tunelab.training.batching import Batch
from tunelab.training.encoding import IGNORE


def _hf_model(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports_fast_path(model: Any, prompt_learning: bool) -> bool:
    """True when body + head is exactly the model's forward."""
    if prompt_learning:
        return False
    config = _hf_model(model).config
    text = getattr(config, "get_text_config", lambda: config)()
    return not (getattr(text, "final_logit_softcapping", None) or getattr(text, "logit_scale", None))


def loss_sum(model: Any, batch: Batch, fast: bool) -> Any:
    """Sum of token losses over the batch's targets (divide by the step's target count)."""
    import torch.nn.functional as F

    mask = batch.targets != IGNORE
    if fast:
        hf = _hf_model(model)
        body = getattr(hf, hf.base_model_prefix)
        out = body(
            input_ids=batch.input_ids,
            position_ids=batch.position_ids,
            attention_mask=batch.attention_mask,
            use_cache=False,
        )
        hidden = out.last_hidden_state[mask]
        logits = hf.get_output_embeddings()(hidden).float()
        return F.cross_entropy(logits, batch.targets[mask], reduction="sum")
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    logits = out.logits[:, -batch.input_ids.shape[1] :, :]
    return F.cross_entropy(logits[mask].float(), batch.targets[mask], reduction="sum")
