"""Is one variant's rating rate really higher? Confidence intervals and tests for rates.

An A/B experiment's feedback is a count of good ratings out of rated
responses per variant. Two rates from small samples differ by chance, so
every rate is shown with its Wilson score interval (good near 0 and 1 and for
small samples, where the normal interval is not) and variants are compared
with scipy's tests: a two-proportion z-test of each variant against the first
(the control), and a chi-square test of independence over all of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# the one Wilson interval, shared with the side-by-side ratings' win rates
from tunelab.evaluation.ratings import wilson_interval

__all__ = ["Comparison", "chi_square", "two_proportion_z", "wilson_interval"]


@dataclass(frozen=True)
class Comparison:
    """A test's statistic and two-sided p-value; ``significant`` at ``alpha``."""

    test: str
    statistic: float
    p_value: float
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    def to_dict(self) -> dict[str, object]:
        return {"test": self.test, "statistic": self.statistic, "p_value": self.p_value, "alpha": self.alpha,
                "significant": self.significant}  # fmt: skip


def two_proportion_z(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> Comparison | None:
    """Pooled two-proportion z-test of b against a (None when a side has no trials or no variance)."""
    from scipy.stats import norm

    if trials_a <= 0 or trials_b <= 0:
        return None
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    if spread == 0:
        return None
    z = (successes_b / trials_b - successes_a / trials_a) / spread
    return Comparison("two-proportion z", z, float(2 * norm.sf(abs(z))))


def chi_square(counts: Sequence[tuple[int, int]]) -> Comparison | None:
    """Chi-square test of independence over (successes, trials) per group (None when it cannot be computed).

    Groups without trials are left out; at least two groups and some of each
    outcome are needed, or the expected counts have a zero.
    """
    from scipy.stats import chi2_contingency

    table = [[s, t - s] for s, t in counts if t > 0]
    if len(table) < 2 or not any(row[0] for row in table) or not any(row[1] for row in table):
        return None
    statistic, p_value, _dof, _expected = chi2_contingency(table, correction=False)
    return Comparison("chi-square", float(statistic), float(p_value))
