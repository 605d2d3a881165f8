"""Synthetic hourly markets for the `liq realism` statistics (sim/facts.py) whose weeks are alike."""

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
