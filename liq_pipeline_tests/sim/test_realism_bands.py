"""The bands of `liq realism` are prediction bands for a new window of the simulated length (sim/facts.py):
a window drawn like the real ones passes every statistic at once at about the nominal rate."""

from __future__ import annotations

import numpy as np

from liq_pipeline.sim import facts
from liq_pipeline_tests.support.realism_markets import stationary_market


def correlated_normal(n: int, rng: np.random.Generator, stats: int = 13, rho: float = 0.3) -> np.ndarray:
    corr = np.full((stats, stats), rho)
    np.fill_diagonal(corr, 1.0)
    return rng.standard_normal((n, stats)) @ np.linalg.cholesky(corr).T


def test_a_new_window_falls_inside_all_statistics_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    resampled = correlated_normal(400, rng)  # what the bootstrap gives: windows like the real ones
    lo, hi, k = facts.prediction_band(resampled, ("linear",) * 13, window_days=24, pool_days=2400, block_days=7)
    new = correlated_normal(4000, rng)
    inside = np.all((new >= lo) & (new <= hi), axis=1).mean()
    assert 0.93 <= inside <= 0.98
    # Per-statistic 95 % intervals would hold far fewer windows on all 13 at once.
    q_lo, q_hi = np.quantile(resampled, [0.025, 0.975], axis=0)
    assert np.all((new >= q_lo) & (new <= q_hi), axis=1).mean() < 0.7
    assert k > 2.5


def test_few_real_blocks_widen_the_band():
    rng = np.random.default_rng(1)
    resampled = correlated_normal(400, rng)
    wide = facts.prediction_band(resampled, ("linear",) * 13, 21, pool_days=56, block_days=7)
    narrow = facts.prediction_band(resampled, ("linear",) * 13, 21, pool_days=5600, block_days=7)
    assert wide[2] > narrow[2] and np.all(wide[1] - wide[0] > narrow[1] - narrow[0])


def test_each_statistic_keeps_its_natural_range():
    rng = np.random.default_rng(2)
    draws = np.column_stack([rng.lognormal(-1.5, 0.8, 300), rng.uniform(0.0, 0.1, 300),
                             np.tanh(rng.normal(0.8, 0.4, 300))])
    lo, hi, _ = facts.prediction_band(draws, ("log", "share", "atanh"), 7, 70, 7)
    assert lo[0] > 0 and lo[1] == 0.0 and hi[1] <= 1 and -1 < lo[2] < hi[2] < 1


def test_resampled_windows_are_runs_of_consecutive_days_cut_to_the_window():
    rng = np.random.default_rng(3)
    days = facts._window_days(rng, np.array([0, 10, 30]), window_days=24, block_days=7)
    assert days.size == 24
    runs = np.split(days, np.flatnonzero(np.diff(days) != 1) + 1)
    assert all(r[0] in (0, 10, 30) for r in runs) and all(r.size <= 7 or r.size % 7 == 0 for r in runs)
    assert facts._block_starts(21, 7, skip=(7, 14)).tolist() == [0, 14]


def test_held_out_windows_of_a_stationary_market_pass_at_about_the_nominal_rate():
    """The instrument's own check: on a market whose weeks are alike, real windows held out and banded with
    the other days pass all 13 statistics about as often as the band's nominal 95 %."""
    held = facts.held_out_real(facts.fact_rows(stationary_market(12), 1), window_days=7, resamples=60)
    assert held.windows == 12 and held.all_pass >= 10


def test_bands_are_for_the_simulated_length_in_days():
    b = facts.bands(facts.fact_rows(stationary_market(6), 1), 10, resamples=30)
    assert b.window_days == 10 and b.block_days == 7 and b.k > 1
    assert set(b.band) == {s.name for s in facts.STATISTICS}
