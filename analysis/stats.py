"""Means with 95% intervals over seeds (or control draws), the yes / no / inconclusive verdict a
claim gets from the interval of its difference, one-sided p-values (Student's t over seeds; the
empirical rank of one value among random draws), and Holm's correction across the claims."""
from __future__ import annotations

import math
from dataclasses import dataclass

LEVEL = 0.95
ALPHA = 0.05  # the family-wise error rate Holm's correction holds across a study's claims


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float | None  # None with a single value: no interval
    high: float | None
    n: int

    def text(self, digits: int = 3) -> str:
        if self.low is None:
            return f"{self.mean:.{digits}f} (n={self.n})"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def estimate(values: list[float]) -> Estimate:
    """Mean and Student-t 95% interval (small samples: 3 seeds give t = 4.30)."""
    from scipy import stats

    if not values:
        raise ValueError("no values to estimate from")
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Estimate(mean, None, None, n)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + LEVEL / 2, n - 1) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)


def verdict(difference: Estimate) -> str:
    """A claim "A exceeds B" from the interval of A - B: yes when it lies above 0, no when below,
    inconclusive when it holds 0 or there is no interval (one seed)."""
    if difference.low is None:
        return "inconclusive"
    if difference.low > 0:
        return "yes"
    if difference.high < 0:
        return "no"
    return "inconclusive"


def all_of(verdicts: list[str]) -> str:
    """A claim made of several comparisons: yes when every one is, no when any is."""
    if "no" in verdicts:
        return "no"
    return "yes" if verdicts and all(v == "yes" for v in verdicts) else "inconclusive"


def t_p_value(values: list[float]) -> float | None:
    """One-sided p of "the mean exceeds 0" by Student's t over `values` (None under two values: no
    test; without spread, the limit: 0 above 0, 1 below)."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    if sd <= 1e-12 * max(1.0, abs(mean)):  # no spread (up to rounding): the test's limit
        return 0.0 if mean > 0 else 1.0 if mean < 0 else 0.5
    return float(stats.t.sf(mean / (sd / math.sqrt(n)), n - 1))


@dataclass(frozen=True)
class Rank:
    """Where one value stands among k random draws: `beats` of them lie above it."""
    beats: int
    draws: int

    @property
    def p_value(self) -> float:
        """The exact one-sided p of "below the draws" for a value exchangeable with them under the
        null: (1 + draws at or below it) / (k + 1); with k draws it is never below 1 / (k + 1)."""
        return (1 + self.draws - self.beats) / (self.draws + 1)


def rank_below(value: float, draws: list[float]) -> Rank:
    return Rank(sum(d > value for d in draws), len(draws))


def holm(p_values: dict[str, float | None], alpha: float = ALPHA) -> dict[str, bool]:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise level `alpha`.
    Sorted ascending, the i-th (from 0) of m is rejected while p <= alpha / (m - i); the first
    that is not stops it. A hypothesis without a p-value is not rejected and does not count in m."""
    tested = sorted((p, key) for key, p in p_values.items() if p is not None)
    rejected = dict.fromkeys(p_values, False)
    for i, (p, key) in enumerate(tested):
        if p > alpha / (len(tested) - i):
            break
        rejected[key] = True
    return rejected

