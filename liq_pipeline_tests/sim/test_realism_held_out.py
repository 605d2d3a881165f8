"""`facts.held_out_real`: the real market judged by the same test as a simulated one (each real window of the
simulated length held out and banded with the days outside it), so a FAIL of `liq realism` can be read against how often real windows fail."""

from __future__ import annotations

import numpy as np

from liq_pipeline.sim import facts

HOUR_MS = 3_600_000


def stationary_market(weeks: int, oi_usd: np.ndarray | None = None, seed: int = 0) -> facts.HourlyMarket:
    """iid hourly returns, liquidations proportional to the range, flat OI unless given, funding varying."""
    rng = np.random.default_rng(seed)
    n = weeks * facts.HOURS_PER_WEEK
    close = 90_000 * np.exp(np.cumsum(rng.normal(0.0, 0.005, n)))
    open_ = np.r_[90_000.0, close[:-1]]
    wick = np.abs(rng.normal(0.0, 0.005, n))
    high, low = np.maximum(open_, close) * (1 + wick), np.minimum(open_, close) * (1 - wick)
    liq = (high - low) / open_ * 1e8 * rng.lognormal(0.0, 0.3, n)
    k = weeks * 21
    return facts.HourlyMarket(
        hour_ms=np.arange(n, dtype=np.int64) * HOUR_MS, open=open_, high=high, low=low, close=close,
        quote_volume_usd=np.full(n, 1e8) * rng.lognormal(0.0, 0.2, n),
        oi_usd=np.full(n, 2.4e9) if oi_usd is None else oi_usd,
        liq_long_usd=liq * 0.6, liq_short_usd=liq * 0.4,
        funding_ms=np.arange(k, dtype=np.int64) * 8 * HOUR_MS, funding_rate_8h=rng.normal(4e-5, 3e-5, k))


def test_each_run_of_weeks_is_held_out_once_and_every_statistic_is_counted():
    held = facts.held_out_real(facts.fact_rows(stationary_market(8), 1), window_days=14, resamples=40)
    assert held.windows == 7 and len(held.failed_counts) == 7
    assert set(held.failures) == {s.name for s in facts.STATISTICS}
    assert held.all_pass == sum(c == 0 for c in held.failed_counts)
    assert sum(held.failures.values()) == sum(held.failed_counts)


def test_a_week_unlike_the_others_fails_when_it_is_held_out():
    oi = np.full(8 * facts.HOURS_PER_WEEK, 2.4e9)
    oi[3 * facts.HOURS_PER_WEEK:4 * facts.HOURS_PER_WEEK] = 0.6e9  # week 4: four times the liquidations per OI
    held = facts.held_out_real(facts.fact_rows(stationary_market(8, oi_usd=oi), 1), window_days=7, resamples=40)
    assert held.failures["liq_pct_oi_per_day"] >= 1
    assert held.failed_counts[3] >= 1


def test_a_real_window_too_short_to_hold_out_gives_none():
    assert facts.held_out_real(facts.fact_rows(stationary_market(3), 1), window_days=14, resamples=40) is None
