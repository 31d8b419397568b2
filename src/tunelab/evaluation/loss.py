"""Mean token loss and perplexity over encoded examples, with the training loss code.

Using the engine's own loss function (logits only at target positions, the same
masks) means eval loss and training loss measure exactly the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


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

    from tunelab.training.loss import loss_sum

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
    return math.exp(min(loss, 50.0)) if loss == loss else float("nan")
