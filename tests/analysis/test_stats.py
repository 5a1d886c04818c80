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


def test_t_p_value_against_the_closed_form_for_two_degrees_of_freedom():
    """With 2 degrees of freedom Student's t has sf(t) = 1/2 - t / (2 sqrt(t^2 + 2)); 1, 2, 3
    give t = 2 sqrt(3)."""
    import math

    from analysis.stats import t_p_value

    t = 2 * math.sqrt(3)
    assert t_p_value([1.0, 2.0, 3.0]) == pytest.approx(0.5 - t / (2 * math.sqrt(t * t + 2)))  # 0.0371
    assert t_p_value([0.5]) is None  # one seed: no test
    assert (t_p_value([0.2, 0.2, 0.2]), t_p_value([-0.1, -0.1])) == (0.0, 1.0)  # no spread: the limit


def test_an_empirical_rank_is_the_monte_carlo_test():
    """One value against k random draws: p = (1 + draws at or below it) / (k + 1); 19 draws all
    above it give the classic 1/20 = 0.05, 5 draws can never give less than 1/6."""
    from analysis.stats import rank_below

    rank = rank_below(0.2, [0.5, 0.6, 0.1, 0.7])
    assert (rank.beats, rank.draws, rank.p_value) == (3, 4, pytest.approx(2 / 5))
    assert rank_below(0.0, [1.0] * 19).p_value == pytest.approx(0.05)
    assert rank_below(0.0, [1.0] * 5).p_value == pytest.approx(1 / 6)


def test_holm_steps_down_until_the_first_that_does_not_hold():
    """p = 0.005, 0.01, 0.03, 0.04 at alpha 0.05: 0.005 <= 0.05/4 and 0.01 <= 0.05/3 hold, 0.03 >
    0.05/2 stops it (0.04, below 0.05 unadjusted, is not rejected either)."""
    from analysis.stats import holm

    assert holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005, "e": None}) == {
        "a": True, "b": False, "c": False, "d": True, "e": False}
    assert holm({"a": 0.02, "b": 0.04}) == {"a": True, "b": True}  # 0.02 <= 0.025, then 0.04 <= 0.05


def test_a_claim_that_does_not_hold_under_holm_is_inconclusive():
    from analysis.study import Claim, corrected

    found = corrected([Claim("C1", "s", ["line"], "yes", 1 / 6), Claim("C2", "s", ["line"], "yes", 0.001),
                       Claim("C3", "s", ["line"], "not run")])
    assert [c.verdict for c in found] == ["inconclusive", "yes", "not run"]
    assert found[0].evidence[-1] == "one-sided p = 0.167; Holm over 2 claims at 0.05: does not hold"
