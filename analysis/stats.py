"""Means with 95% intervals over seeds (or control draws), and the yes / no / inconclusive verdict
a claim gets from the interval of its difference."""
from __future__ import annotations

import math
from dataclasses import dataclass

LEVEL = 0.95


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
