"""Training health: rules over the logged metric history that name a problem and its fix.

Pure functions (no torch, no files) so each rule is tested on synthetic series:
``diagnose(history)`` looks at the latest ``train`` metric lines (``loss``,
``grad_norm``, ``step``) and returns what is wrong now; ``new_findings`` turns
that into what to *report*, once per episode (a problem is reported when it
appears, and again only after it went away and came back). The engine calls
both at logging steps and writes each finding as a ``diagnosis`` event.

The thresholds are deliberately loose: mini-batch losses are noisy, and a
false alarm on every healthy run would teach users to ignore the events.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: How many logged points the loss rules look at, and how many they need.
LOSS_WINDOW = 20
LOSS_MIN_POINTS = 10
#: Gradient rules: the latest few points against the rest of the window.
GRAD_WINDOW = 10
GRAD_RECENT = 3
GRAD_HIGH = 10.0  # pre-clipping gradient norm considered exploding (the guide's threshold)
GRAD_JUMP = 10.0  # or this many times the window's earlier median
GRAD_LOW = 1e-3  # every point below this: vanishing (the guide's threshold)
#: Loss rules, relative to the window's mean loss.
RISE = 0.10  # the fitted line rises by 10% of the mean over the window
FLAT_CHANGE = 0.01  # the fitted line moves by less than 1% ...
FLAT_RANGE = 0.05  # ... and every point lies within 5% of the mean
OSC_TURNS = 0.6  # the direction changes at 60% or more of the points ...
OSC_AMPLITUDE = 0.25  # ... by more than 25% of the mean per step on average
CONVERGED_LOSS = 0.05  # below this a flat loss or tiny gradients mean the data is learnt

SUGGESTIONS = {
    "non_finite": "Numerical instability: lower the learning rate 2-10x, keep gradient clipping on "
                  "(max_grad_norm 1.0), prefer bf16 over fp16, and check the data for empty or broken rows.",
    "exploding_gradients": "Keep gradient clipping on (max_grad_norm 1.0), lower the learning rate 2-10x "
                           "or add warm-up steps.",
    "vanishing_gradients": "The updates are tiny: raise the learning rate, check that the adapter targets "
                           "the right modules (lora.target_modules) and that the loss mask keeps the replies.",
    "loss_rising": "Lower the learning rate 2-10x (set it on the running job) or add warm-up; if only the "
                   "eval loss rises, it is overfitting: fewer epochs, more data or early_stopping_patience.",
    "loss_oscillating": "The learning rate is probably too high: reduce it 2-10x, add warm-up, or raise "
                        "batch_size / gradient_accumulation_steps for smoother steps.",
    "loss_flat": "The loss has plateaued: early in a run raise the learning rate (or shorten warm-up); "
                 "late in a run it has converged, so stop early or let the schedule decay.",
}  # fmt: skip


@dataclass(frozen=True)
class Diagnosis:
    """One problem found at ``step``: a stable ``code``, a sentence, and what to do about it."""

    code: str
    message: str
    step: int
    suggestion: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def slope(values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against 0, 1, 2, ... (0 for fewer than two points)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def turning_fraction(values: Sequence[float]) -> float:
    """Share of interior points where the series changes direction (about 2/3 for pure noise)."""
    diffs = [b - a for a, b in itertools.pairwise(values) if b != a]
    if len(diffs) < 2:
        return 0.0
    turns = sum(1 for a, b in itertools.pairwise(diffs) if (a > 0) != (b > 0))
    return turns / (len(diffs) - 1)


def _non_finite(last: Mapping[str, Any], step: int) -> Diagnosis | None:
    for key in ("loss", "grad_norm"):
        value = _number(last.get(key))
        if value is not None and not math.isfinite(value):
            return Diagnosis("non_finite", f"{key} is {value} at step {step}", step,
                             SUGGESTIONS["non_finite"], {"metric": key, "value": str(value)})
    return None


def _gradients(history: Sequence[Mapping[str, Any]], step: int) -> Diagnosis | None:
    norms = _finite(_number(m.get("grad_norm")) for m in history[-GRAD_WINDOW:])
    if len(norms) < GRAD_RECENT:
        return None
    recent = statistics.median(norms[-GRAD_RECENT:])
    earlier = norms[:-GRAD_RECENT]
    base = statistics.median(earlier) if earlier else None
    if recent > GRAD_HIGH or (base and base > 0 and recent > GRAD_JUMP * base):
        message = f"gradient norm {recent:.3g} at step {step}" + (
            f", {recent / base:.0f}x the earlier {base:.3g}" if base else "")
        return Diagnosis("exploding_gradients", message, step, SUGGESTIONS["exploding_gradients"],
                         {"grad_norm": recent, "earlier_grad_norm": base})
    loss = _number(history[-1].get("loss"))
    if (len(norms) >= GRAD_WINDOW and max(norms) < GRAD_LOW
            and (loss is None or loss > CONVERGED_LOSS)):
        return Diagnosis("vanishing_gradients",
                         f"gradient norm below {GRAD_LOW:g} for {len(norms)} logged steps", step,
                         SUGGESTIONS["vanishing_gradients"], {"max_grad_norm": max(norms)})
    return None


def _loss(history: Sequence[Mapping[str, Any]], step: int) -> Diagnosis | None:
    losses = _finite(_number(m.get("loss")) for m in history[-LOSS_WINDOW:])
    if len(losses) < LOSS_MIN_POINTS:
        return None
    mean = sum(losses) / len(losses)
    if mean <= 0:
        return None
    change = slope(losses) * (len(losses) - 1) / mean
    amplitude = sum(abs(b - a) for a, b in itertools.pairwise(losses)) / (len(losses) - 1) / mean
    turns = turning_fraction(losses)
    facts = {"points": len(losses), "mean_loss": mean, "relative_change": change,
             "relative_step_change": amplitude, "turning_fraction": turns}
    if turns >= OSC_TURNS and amplitude > OSC_AMPLITUDE:
        return Diagnosis("loss_oscillating",
                         f"loss swings by {amplitude:.0%} of its mean per step over the last {len(losses)} logs",
                         step, SUGGESTIONS["loss_oscillating"], facts)
    half = len(losses) // 2
    if change > RISE and sum(losses[half:]) / (len(losses) - half) > sum(losses[:half]) / half:
        return Diagnosis("loss_rising", f"loss rose {change:.0%} over the last {len(losses)} logs", step,
                         SUGGESTIONS["loss_rising"], facts)
    spread = (max(losses) - min(losses)) / mean
    if abs(change) < FLAT_CHANGE and spread < FLAT_RANGE and mean > CONVERGED_LOSS:
        return Diagnosis("loss_flat", f"loss flat at {mean:.4g} over the last {len(losses)} logs", step,
                         SUGGESTIONS["loss_flat"], {**facts, "relative_range": spread})
    return None


def diagnose(history: Sequence[Mapping[str, Any]]) -> list[Diagnosis]:
    """Every problem the latest ``train`` metric lines show (oldest first in ``history``)."""
    train = [m for m in history if m.get("type", "train") == "train"]
    if not train:
        return []
    step = int(_number(train[-1].get("step")) or len(train))
    broken = _non_finite(train[-1], step)
    if broken is not None:
        return [broken]  # the other rules mean nothing once the numbers are gone
    found = [_gradients(train, step), _loss(train, step)]
    return [d for d in found if d is not None]


def new_findings(active: set[str], found: Sequence[Diagnosis]) -> tuple[list[Diagnosis], set[str]]:
    """(the diagnoses to report now, the codes active after this check).

    A code is reported when it appears; while it persists it stays quiet; once
    it is gone it may be reported again.
    """
    codes = {d.code for d in found}
    return [d for d in found if d.code not in active], codes
