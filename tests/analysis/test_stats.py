"""Intervals against values computed by hand from the t table, and the verdict rule."""
import math

import pytest

from analysis.stats import Estimate, all_of, estimate, verdict

T_975_DF2 = 4.302652729911275  # Student t, 97.5th percentile, 2 degrees of freedom (tables)


def test_three_values_give_the_student_t_interval():
    e = estimate([1.0, 2.0, 3.0])  # mean 2, sample sd 1
    half = T_975_DF2 * 1.0 / math.sqrt(3)
    assert e.mean == pytest.approx(2.0)
    assert (e.low, e.high) == (pytest.approx(2.0 - half), pytest.approx(2.0 + half))
    assert e.text() == "2.000 [-0.484, 4.484]"


def test_one_value_has_no_interval_and_decides_nothing():
    e = estimate([0.4])
    assert e.low is None and e.text() == "0.400 (n=1)"
    assert verdict(e) == "inconclusive"


def test_verdicts_follow_the_interval_of_the_difference():
    assert verdict(Estimate(0.2, 0.1, 0.3, 3)) == "yes"
    assert verdict(Estimate(-0.2, -0.3, -0.1, 3)) == "no"
    assert verdict(Estimate(0.05, -0.1, 0.2, 3)) == "inconclusive"
    assert all_of(["yes", "yes"]) == "yes"
    assert all_of(["yes", "inconclusive"]) == "inconclusive"
    assert all_of(["yes", "no"]) == "no"
