"""Validation metrics (model/scoring.py) reproduce the formulas of liquidation-math.md §9 and behave at edges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liq_pipeline.model import scoring


def test_seed_grade_example_is_c():
    # liquidation-math.md §9.5: r 0.6, error 0.5 %, accuracy 1.0 → 30 + 19 + 30 = 79 → C
    g = scoring.grade(0.6, 0.5, 1.0)
    assert (g.fc_score, g.oi_score, g.dir_score) == pytest.approx((60.0, 95.0, 100.0))
    assert g.total == pytest.approx(79.0)
    assert g.letter == "C" and not g.inconclusive


@pytest.mark.parametrize(("r", "err", "acc", "letter"), [
    (0.8, 0.0, 1.0, "A"), (0.6, 0.0, 1.0, "B"), (0.4, 1.0, 0.9, "F"), (-0.9, 0.0, 1.0, "F"),
])
def test_grade_thresholds(r, err, acc, letter):
    assert scoring.grade(r, err, acc).letter == letter


def test_undefined_r_scores_zero_and_is_inconclusive():
    g = scoring.grade(None, 0.0, 1.0)
    assert g.fc_score == 0 and g.inconclusive and g.total == pytest.approx(50.0)
    assert any("inconclusive" in n for n in g.notes)


def test_oi_score_floors_at_zero_and_clamps_r():
    g = scoring.grade(1.7, 25.0, 1.0)
    assert g.fc_score == 100.0 and g.oi_score == 0.0


def test_poor_data_quality_caps_letter_at_c():
    assert scoring.grade(1.0, 0.0, 1.0, data_quality=0.99).letter == "A"
    capped = scoring.grade(1.0, 0.0, 1.0, data_quality=0.6)
    assert capped.letter == "C" and any("capped" in n for n in capped.notes)


def test_pearson_of_a_linear_relation_passes():
    x = np.linspace(0, 1, 30)
    c = scoring.pearson(x, 2 * x + 1)
    assert c.r == pytest.approx(1.0) and c.p < 1e-10 and c.verdict == scoring.PASS and c.n == 30


def test_constant_funding_is_inconclusive_not_fail():
    est = np.random.default_rng(1).uniform(0.4, 0.6, 30)
    expected = scoring.funding_implied_long_ratio(np.full(30, 0.0001))
    c = scoring.pearson(est, expected)
    assert c.verdict == scoring.INCONCLUSIVE and c.r is None and "constant" in c.reason


def test_short_or_nan_series_is_inconclusive_and_nans_are_dropped():
    assert scoring.pearson([1.0, 2.0], [1.0, 3.0]).verdict == scoring.INCONCLUSIVE
    c = scoring.pearson([1.0, 2.0, np.nan, 4.0, 5.0], [1.0, 2.1, 3.0, 3.9, 5.2])
    assert c.n == 4 and c.r > 0.99


def test_p_value_condition_binds_for_short_windows():
    # r just above 0.7 with n = 5 is not significant at 5 % → fail, per §9.1
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([0.0, 2.5, 0.5, 3.0, 2.4])
    c = scoring.pearson(x, y)
    assert c.r > 0.6 and c.p > 0.05 and c.verdict == scoring.FAIL


def test_funding_implied_ratio_values():
    assert scoring.funding_implied_long_ratio(0.0) == pytest.approx(0.5)
    assert scoring.funding_implied_long_ratio(0.001) == pytest.approx(0.5 + 0.3 * math.tanh(1.0))
    assert scoring.funding_implied_long_ratio(-1.0) == pytest.approx(0.2)


def test_oi_error_pct_and_bad_oi():
    assert scoring.oi_error_pct(101.0, 100.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        scoring.oi_error_pct(1.0, 0.0)


def test_directional_uses_the_mark_bin():
    side = np.array(["long", "long", "long", "short", "short"])
    bins = np.array([90, 100, 101, 100, 99])
    ok = scoring.directional_ok(side, bins, 100)
    assert ok.tolist() == [True, True, False, True, False]
    assert scoring.directional_accuracy(ok) == pytest.approx(0.6)
    assert math.isnan(scoring.directional_accuracy(np.array([], dtype=bool)))


def test_overlap_identical_disjoint_and_scale_free():
    a = np.array([1.0, 2.0, 0.0])
    assert scoring.distribution_overlap(a, 10 * a) == pytest.approx(1.0)
    assert scoring.distribution_overlap(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(0.0)
    assert scoring.distribution_overlap(np.array([1.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(0.5)
    assert math.isnan(scoring.distribution_overlap(np.zeros(2), np.ones(2)))
    with pytest.raises(ValueError):
        scoring.distribution_overlap(np.array([-1.0, 1.0]), np.ones(2))


def test_mean_abs_relative_error_of_the_simplified_formula():
    # liquidation-math.md §6: EP 100, 10x, MMR 0.004: exact long 90.361446, simplified 90.4
    assert scoring.mean_abs_relative_error([90.4], [90.361446]) == pytest.approx(0.000427, abs=1e-6)


def test_top_k_counts_false_positives():
    predicted = np.array([9.0, 8.0, 7.0, 0.0, 1.0])
    realized = np.array([5.0, 0.0, 3.0, 4.0, 0.0])
    t = scoring.top_k_precision_recall(predicted, realized, k=3)
    assert (t.true_positives, t.false_positives, t.false_negatives) == (2, 1, 1)
    assert t.precision == pytest.approx(2 / 3) and t.recall == pytest.approx(2 / 3)
    assert t.notional_recall == pytest.approx(8 / 12)


def test_top_k_never_flags_zero_predictions():
    t = scoring.top_k_precision_recall(np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 1.0]), k=3)
    assert t.false_positives == 1 and t.true_positives == 0 and t.precision == 0.0


def test_spearman_is_rank_based():
    x = np.arange(10.0)
    c = scoring.spearman(x, np.exp(x))
    assert c.r == pytest.approx(1.0) and c.method == "spearman"


def test_naive_baseline_places_levels_by_leverage():
    f_long, f_short = scoring.naive_level_factors(np.array([10.0]), 0.004)
    assert 100 * f_long[0] == pytest.approx(90.361446, abs=1e-6)  # §6 table, exact long
    assert 100 * f_short[0] == pytest.approx(109.561753, abs=1e-6)
    long_usd, short_usd = scoring.naive_baseline_in_range(
        mark_price=np.array([100.0, 100.0]), long_total_usd=np.array([1000.0, 1000.0]),
        short_total_usd=np.array([500.0, 500.0]), low=np.array([85.0, 95.0]), high=np.array([99.0, 105.0]),
        leverages=np.array([10.0, 50.0]), weights=np.array([0.6, 0.4]), mmr=0.004)
    # bar 0 covers both long levels (90.36, 98.39); bar 1 covers only the 50x long (98.39) and 50x short (101.59)
    assert long_usd.tolist() == pytest.approx([1000.0, 400.0])
    assert short_usd.tolist() == pytest.approx([0.0, 200.0])


def test_lift():
    assert scoring.lift(0.6, 0.3) == pytest.approx(2.0)
    assert math.isnan(scoring.lift(0.6, 0.0))


def test_partial_spearman_removes_what_the_controls_explain():
    rng = np.random.default_rng(0)
    z = rng.normal(size=500)
    x = z + 0.1 * rng.normal(size=500)   # x is mostly z
    y = z + 0.1 * rng.normal(size=500)   # so is y: related only through z
    assert scoring.spearman(x, y).r > 0.9
    assert abs(scoring.partial_spearman(x, y, [z]).r) < 0.15
    w = rng.normal(size=500)
    y2 = z + w
    assert scoring.partial_spearman(w + 0.1 * rng.normal(size=500), y2, [z]).r > 0.8
    assert scoring.partial_spearman(z, y, [z]).verdict == scoring.INCONCLUSIVE
    assert scoring.partial_spearman(x[:5], y[:5], [z[:5]]).verdict == scoring.INCONCLUSIVE


def test_bootstrap_interval_over_days():
    clear = scoring.bootstrap_mean_interval(np.full(20, 0.05) + np.linspace(-0.01, 0.01, 20))
    assert clear.excludes_zero and clear.low > 0 and clear.mean == pytest.approx(0.05)
    tie = scoring.bootstrap_mean_interval(np.zeros(20))
    assert not tie.excludes_zero
    noisy = scoring.bootstrap_mean_interval(np.array([0.1, -0.1, 0.05, -0.05, 0.02, -0.03]))
    assert noisy.low < 0 < noisy.high and not noisy.excludes_zero
    assert scoring.bootstrap_mean_interval(np.array([0.1, 0.2])).low is None


def test_log_price_distance_is_bin_free():
    d = scoring.weighted_log_price_distance(np.array([100.0]), np.array([1.0]), np.array([101.0]), np.array([5.0]))
    assert d == pytest.approx(math.log(1.01))
    assert scoring.weighted_log_price_distance(np.array([100.0, 200.0]), np.array([1.0, 1.0]),
                                               np.array([100.0, 200.0]), np.array([2.0, 2.0])) == pytest.approx(0.0)
    assert math.isnan(scoring.weighted_log_price_distance(np.array([]), np.array([]), np.array([1.0]), np.array([1.0])))
