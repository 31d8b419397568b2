"""The health rules on synthetic metric series: each problem is found, healthy runs stay quiet."""

from __future__ import annotations

import math
import random

import pytest

from tunelab.training.diagnostics import (
    SUGGESTIONS,
    diagnose,
    new_findings,
    slope,
    turning_fraction,
)


def series(losses: list[float], grads: list[float] | None = None) -> list[dict[str, float]]:
    grads = grads or [0.8] * len(losses)
    return [{"type": "train", "step": i + 1, "loss": loss, "grad_norm": grad}
            for i, (loss, grad) in enumerate(zip(losses, grads, strict=True))]


def codes(history: list[dict[str, float]]) -> list[str]:
    return [d.code for d in diagnose(history)]


def noisy(values: list[float], scale: float, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [v * (1 + rng.uniform(-scale, scale)) for v in values]


def test_a_healthy_decreasing_noisy_loss_is_quiet() -> None:
    losses = noisy([3.0 * math.exp(-i / 15) + 0.5 for i in range(40)], 0.08)
    assert codes(series(losses)) == []
    assert codes(series(losses[:5])) == []  # too few points to judge


def test_nan_and_infinity_are_found_at_once() -> None:
    found = diagnose(series([2.0, 1.9, float("nan")]))
    assert [d.code for d in found] == ["non_finite"]
    assert found[0].step == 3 and "nan" in found[0].message and found[0].suggestion == SUGGESTIONS["non_finite"]
    assert codes(series([2.0, 1.9, 1.8], [1.0, 1.0, float("inf")])) == ["non_finite"]


def test_flat_loss() -> None:
    flat = noisy([2.0] * 20, 0.005)
    found = diagnose(series(flat))
    assert [d.code for d in found] == ["loss_flat"]
    assert found[0].data["points"] == 20
    assert codes(series(noisy([0.01] * 20, 0.005))) == []  # flat near zero: the data is learnt


def test_rising_loss() -> None:
    assert codes(series(noisy([1.0 + 0.05 * i for i in range(20)], 0.03))) == ["loss_rising"]


def test_oscillating_loss() -> None:
    zigzag = [2.0 if i % 2 else 0.8 for i in range(20)]
    found = diagnose(series(zigzag))
    assert [d.code for d in found] == ["loss_oscillating"]
    assert found[0].data["turning_fraction"] == 1.0


def test_exploding_gradients_absolute_and_sudden() -> None:
    losses = noisy([3.0 - 0.05 * i for i in range(12)], 0.02)
    assert "exploding_gradients" in codes(series(losses, [0.5] * 9 + [40.0, 50.0, 60.0]))
    assert "exploding_gradients" in codes(series(losses, [0.1] * 9 + [2.0, 2.5, 3.0]))  # 25x the usual
    assert "exploding_gradients" not in codes(series(losses, [0.5] * 12))


def test_vanishing_gradients() -> None:
    losses = noisy([3.0 - 0.05 * i for i in range(12)], 0.02)
    assert codes(series(losses, [1e-5] * 12)) == ["vanishing_gradients"]
    assert codes(series(losses[:8], [1e-5] * 8)) == []  # needs a full window
    assert codes(series([0.01] * 12, [1e-5] * 12)) == []  # converged: tiny gradients are expected


def test_findings_are_reported_once_per_episode() -> None:
    flat = diagnose(series(noisy([2.0] * 20, 0.005)))
    report, active = new_findings(set(), flat)
    assert [d.code for d in report] == ["loss_flat"] and active == {"loss_flat"}
    report, active = new_findings(active, flat)
    assert report == [] and active == {"loss_flat"}
    report, active = new_findings(active, [])
    assert report == [] and active == set()
    assert [d.code for d in new_findings(active, flat)[0]] == ["loss_flat"]


@pytest.mark.parametrize(("values", "expected"), [([1, 2, 3, 4], 1.0), ([4, 4, 4], 0.0), ([5], 0.0)])
def test_slope(values: list[float], expected: float) -> None:
    assert slope(values) == pytest.approx(expected)


def test_turning_fraction() -> None:
    assert turning_fraction([1, 2, 1, 2, 1]) == 1.0
    assert turning_fraction([1, 2, 3, 4]) == 0.0
    assert turning_fraction([1, 1, 1]) == 0.0


def test_metric_lines_of_other_types_and_missing_values_are_ignored() -> None:
    history = [*series(noisy([2.0] * 20, 0.005)), {"type": "eval", "step": 20, "eval_loss": 9.0}]
    assert codes(history) == ["loss_flat"]
    assert diagnose([]) == []
    assert diagnose([{"type": "train", "step": 1}]) == []
