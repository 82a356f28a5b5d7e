"""Seed-level paired statistics against numbers computed by hand."""

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from segclr.experiment.stats import (bootstrap_ci, dice_with_fluid, fmt_summary, pooled_seed_test, seed_differences,
                                     seed_level_test, seed_summary, t_interval, welch_interval)


def test_seed_differences_by_hand():
    a = {"0": 0.6, "1": 0.7, "2": 0.8, "7": 0.9}   # seed 7 has no partner: left out
    b = {"0": 0.5, "1": 0.5, "2": 0.5}
    t = seed_differences(a, b)
    assert t["n_seeds"] == 3 and t["wins"] == 3 and t["losses"] == 0
    assert t["mean_diff"] == pytest.approx(0.2)
    # std([.1, .2, .3], ddof=1) = 0.1; t(0.975, 2) = 4.302653; half width 4.302653 * 0.1 / sqrt(3)
    half = 4.302653 * 0.1 / math.sqrt(3)
    assert (t["t_low"], t["t_high"]) == pytest.approx((0.2 - half, 0.2 + half), abs=1e-5)
    # the mean of 3 draws is 0.1 (all three the smallest) with chance 1/27 > 2.5 %: the percentile
    # interval is [min, max] of the differences
    assert (t["ci_low"], t["ci_high"]) == pytest.approx((0.1, 0.3))
    assert t["sign_p"] == pytest.approx(0.25)      # 2 * (1/2)^3
    assert t["wilcoxon_p"] == pytest.approx(0.25)  # exact: W- = 0 of 2^3 sign patterns, two-sided


def test_seed_differences_losses_ties_and_missing():
    t = seed_differences({"0": 0.5, "1": 0.4}, {"0": 0.5, "1": 0.6})
    assert t["wins"] == 0 and t["losses"] == 1 and t["sign_p"] == pytest.approx(1.0)
    assert seed_differences({"0": 0.5}, {"1": 0.5}) is None
    one = seed_differences({"0": 0.5}, {"0": 0.4})
    assert math.isnan(one["ci_low"]) and math.isnan(one["t_low"]) and math.isnan(one["wilcoxon_p"])
    with pytest.raises(ValueError, match="NaN"):
        seed_differences({"0": float("nan")}, {"0": 0.4})


def test_intervals_of_constant_and_two_values():
    assert bootstrap_ci(np.array([0.2, 0.2, 0.2])) == pytest.approx((0.2, 0.2))
    lo, hi = t_interval(np.array([0.0, 1.0]))   # mean 0.5, std 0.7071, t(0.975, 1) = 12.7062
    assert (lo, hi) == pytest.approx((0.5 - 12.7062 * 0.5, 0.5 + 12.7062 * 0.5), abs=1e-3)


def _case(method, seed, case, dice, n_ref, n_pred):
    return {"method": method, "target_device": "dev", "seed": str(seed), "domain": "dev", "class": "fluid",
            "case": case, "dice": str(dice), "n_ref": str(n_ref), "n_pred": str(n_pred)}


def test_seed_level_test_averages_only_bscans_with_fluid():
    cases = [_case("A", 0, "x", 0.8, 10, 9), _case("A", 0, "y", 0.4, 5, 5), _case("A", 0, "e", 0.0, 0, 3),
             _case("B", 0, "x", 0.5, 10, 9), _case("B", 0, "y", 0.3, 5, 5), _case("B", 0, "e", "nan", 0, 0),
             _case("A", 1, "x", 0.7, 10, 9), _case("A", 1, "y", 0.5, 5, 5),
             _case("B", 1, "x", 0.7, 10, 9), _case("B", 1, "y", 0.3, 5, 5)]
    assert dice_with_fluid(cases, "A", "dev", "dev") == pytest.approx({"0": 0.6, "1": 0.6})
    t = seed_level_test(cases, "dev", "A", "B", "dev")
    # per seed: A 0.6 and 0.6; B 0.4 and 0.5 -> differences 0.2 and 0.1
    assert t["mean_diff"] == pytest.approx(0.15) and t["wins"] == 2


def test_pooled_seed_test_reads_results_rows():
    rows = [{"method": m, "target_device": "dev", "seed": str(s), "domain": d, "dice_pooled": str(v)}
            for m, s, d, v in [("A", 0, "dev", 0.70), ("A", 1, "dev", 0.66), ("A", 0, "src", 0.9),
                               ("B", 0, "dev", 0.60), ("B", 1, "dev", 0.70), ("B", 0, "src", 0.1)]]
    t = pooled_seed_test(rows, "dev", "A", "B", "dev")
    assert t["n_seeds"] == 2 and t["mean_diff"] == pytest.approx((0.10 - 0.04) / 2)
    assert t["wins"] == 1 and t["losses"] == 1


def test_welch_interval_by_hand_and_at_its_edges():
    d = welch_interval([0.70, 0.66, 0.71], [0.60, 0.62, 0.58, 0.61])
    va, vb = np.var([0.70, 0.66, 0.71], ddof=1) / 3, np.var([0.60, 0.62, 0.58, 0.61], ddof=1) / 4
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)  # Welch-Satterthwaite
    half = student_t.ppf(0.975, df) * math.sqrt(va + vb)
    assert d["diff"] == pytest.approx(0.69 - 0.6025)
    assert (d["low"], d["high"]) == pytest.approx((d["diff"] - half, d["diff"] + half))
    assert 2 < df < 5  # between the smaller side's n - 1 and n_a + n_b - 2
    one = welch_interval([0.7], [0.6, 0.62])  # one value a side: a difference, no interval
    assert one["diff"] == pytest.approx(0.09) and math.isnan(one["low"]) and math.isnan(one["high"])
    flat = welch_interval([0.5, 0.5], [0.4, 0.4])  # no spread on either side: no interval, not a zero-width one
    assert flat["diff"] == pytest.approx(0.1) and math.isnan(flat["low"])
    assert all(math.isnan(v) for v in welch_interval([], [0.6, 0.62]).values())


def test_fmt_summary():
    assert fmt_summary(None) == "not run"
    assert fmt_summary({"mean": 0.6543, "std": 0.0, "n": 1}) == "0.654 (1 seed)"
    assert fmt_summary({"mean": 0.6543, "std": 0.0123, "n": 5}) == "0.654 ± 0.012 (n=5)"


def test_seed_summary_leaves_nan_seeds_out_and_orders_seeds_numerically():
    s = seed_summary({"10": 0.3, "2": 0.5, "1": float("nan"), "0": 0.4})
    assert s["seeds"] == ["0", "2", "10"] and s["values"] == [0.4, 0.5, 0.3] and s["n"] == 3
    assert s["mean"] == pytest.approx(0.4) and s["std"] == pytest.approx(0.1)
    assert seed_summary({0: 0.7}) == {"mean": 0.7, "std": 0.0, "n": 1, "seeds": [0], "values": [0.7]}
    assert seed_summary({0: float("nan")}) is None
