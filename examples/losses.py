"""Custom training losses for `loss.loss_fn` (see docs/training.md, "Custom losses").

Run with this folder on the Python path, for example::

    PYTHONPATH=examples tunelab train examples/identity-focal-loss.yaml

The engine calls ``fn(logits, targets, task=..., weight=..., label_smoothing=...)``
with float logits (N, C) of the N target rows and their targets (N,), possibly a
chunk of a batch at a time, and wants the summed loss of those rows back.
"""

from __future__ import annotations

from typing import Any


def focal_loss(logits: Any, targets: Any, *, weight: Any = None, gamma: float = 2.0, **context: Any) -> Any:
    """Focal loss (Lin et al., 2017): cross-entropy scaled by (1 - p)^gamma, so tokens the
    model already predicts well count less and the hard ones more. ``weight`` (from
    ``loss.token_weights`` or ``loss.class_weights``) still weighs each target."""
    import torch.nn.functional as F

    log_p = F.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
    loss = -((1 - log_p.exp()) ** gamma) * log_p
    if weight is not None:
        loss = loss * weight[targets]
    return loss.sum()
