"""Loss functions a ``loss.loss_fn`` names in the tests (``tests.training.loss_fns:NAME``).

``doubled`` is a real criterion (twice the summed cross-entropy) that records each
call, so a test can see the engine called it and what it was given.
"""

from __future__ import annotations

from typing import Any

CALLS: list[dict[str, Any]] = []
NOT_A_FUNCTION = 3


def doubled(logits: Any, targets: Any, **context: Any) -> Any:
    """Twice the summed cross-entropy of the rows."""
    import torch.nn.functional as F

    CALLS.append({"rows": int(targets.shape[0]), "width": int(logits.shape[-1]), **context})
    return 2 * F.cross_entropy(logits, targets, reduction="sum")


def one_argument(logits: Any) -> Any:
    """A wrong signature: no targets, no context."""
    return logits.sum()


def per_row(logits: Any, targets: Any, **context: Any) -> Any:
    """A wrong answer: one loss per row instead of their sum."""
    import torch.nn.functional as F

    return F.cross_entropy(logits, targets, reduction="none")


def detached(logits: Any, targets: Any, **context: Any) -> Any:
    """A wrong answer: a number cut off from the logits (nothing would train)."""
    import torch.nn.functional as F

    return F.cross_entropy(logits.detach(), targets, reduction="sum")
