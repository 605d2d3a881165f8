"""The oracle's fast pricing (the tier found from the position's tier floors in 1/L, one tier priced) gives
the very numbers of pricing every tier and keeping the one that contains the liquidation notional."""

import datetime as dt

import numpy as np
import pytest

from liq_pipeline.model import margin


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_one_tier_pricing_equals_every_tier_pricing(symbol):
    table = margin.table_for(symbol, dt.date(2026, 1, 5)).table
    rng = np.random.default_rng(11)
    n = 4_000
    # Sizes from $50 to $300 M: every tier, beyond an incomplete table's last cap, and exactly on tier floors.
    notional = np.exp(rng.uniform(np.log(50), np.log(3e8), n))
    notional[:40] = np.resize(table.notional_floor[1:], 40)
    entry = rng.uniform(1_000, 120_000, n)
    side = np.where(rng.random(n) < 0.5, margin.LONG, margin.SHORT)
    leverages = np.r_[np.arange(1, 151), 1 / np.arange(0.007, 0.7, 0.003), [1.0001, 1.5]]
    tier = np.clip(np.searchsorted(table.notional_floor, notional, side="right") - 1, 0, len(table.mmr) - 1)
    cap = np.where(np.isnan(table.max_leverage[tier]), np.floor(0.5 / table.mmr[tier]), table.max_leverage[tier])
    lev = np.minimum(leverages[None, :], cap[:, None])

    full = margin.isolated_liquidation_price_at_leverage(side[:, None], notional[:, None], entry[:, None], lev,
                                                         table).price
    fast = margin.isolated_liquidation_price_over_leverages(side, notional, entry, lev, table)

    assert np.isnan(full).any() and np.isfinite(full).any()  # unpriced points are covered too
    np.testing.assert_array_equal(fast, full)  # bit for bit, nan where the full way has none
    # Leverages past a tier's cap (not capped here) still price as the full way does.
    raw = np.broadcast_to(leverages, (n, leverages.size))
    np.testing.assert_array_equal(
        margin.isolated_liquidation_price_over_leverages(side, notional, entry, raw, table),
        margin.isolated_liquidation_price_at_leverage(side[:, None], notional[:, None], entry[:, None], raw, table).price)
