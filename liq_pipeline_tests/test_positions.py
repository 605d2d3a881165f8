"""Position-distribution variants, the warehouse signals record (no lookahead) and levels at risk."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pytest

from liq_pipeline.config import MODEL
from liq_pipeline.model import positions as pos
from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.model.levels import LeverageMix, SizeBuckets, project_levels
from liq_pipeline.model.margin import LONG, SHORT, table_for
from liq_pipeline.model.positions import PositionSignals, build_distributions
from liq_pipeline.model.variants import SEED as SEED_VARIANTS
from liq_pipeline.warehouse.readers.signals import signals_from_warehouse
from liq_pipeline.warehouse.schema import ensure_tables

AS_OF = dt.datetime(2026, 1, 11)
PRICE = np.array([90_000.0, 97_000.0, 100_000.0, 103_000.0, 110_000.0])
NOTIONAL = np.array([1e8, 3e8, 5e8, 2e8, 1e8])
P_LONG = np.array([0.3, 0.5, 0.7, 0.6, 0.4])


def signals(**kw) -> PositionSignals:
    base = dict(as_of=AS_OF, mark_price=100_000.0, oi_usd=8e9, oi_24h_ago_usd=8e9, funding_rate_8h=0.0001)
    return PositionSignals(**{**base, **kw})


def totals(d):
    return d.long_usd.sum() + d.short_usd.sum()


# ------------------------------------------------------------------------------------- distributions
def test_every_variant_is_built_and_scaled_to_open_interest():
    for s in (signals(), signals(funding_rate_8h=0.0004, oi_24h_ago_usd=6e9), signals(funding_rate_8h=-0.0003)):
        dists = build_distributions(PRICE, NOTIONAL, P_LONG, s)
        assert tuple(dists) == SEED_VARIANTS
        for d in dists.values():
            assert totals(d) == pytest.approx(8e9, rel=1e-12)
            assert np.all(d.long_usd >= 0) and np.all(d.short_usd >= 0)


def test_neutral_signals_make_funding_equal_5050_and_hybrid_equal_ofi():
    dists = build_distributions(PRICE, NOTIONAL, P_LONG, signals())
    assert np.allclose(dists["funding"].long_usd, dists["volume_5050"].long_usd)
    assert np.allclose(dists["hybrid"].long_usd, dists["ofi"].long_usd)
    assert np.allclose(dists["volume_5050"].long_usd, dists["volume_5050"].short_usd)
    # OFI split is per bin: long share = long_prob, shape = volume profile.
    ofi = dists["ofi"]
    assert np.allclose(ofi.long_usd / (ofi.long_usd + ofi.short_usd), P_LONG)
    assert np.allclose((ofi.long_usd + ofi.short_usd) / 8e9, NOTIONAL / NOTIONAL.sum())


@pytest.mark.parametrize("f,long_x,short_x", [
    (0.0001, 1.0, 1.0), (0.00015, 1.181, 0.819), (0.0002, 1.193, 0.807), (0.0005, 1.200, 0.800),
    (-0.0002, 0.807, 1.193), (-0.0001, 1.0, 1.0), (None, 1.0, 1.0),
])
def test_funding_multipliers_follow_the_reference_table(f, long_x, short_x):
    got = pos.funding_multipliers(f)
    assert got == pytest.approx((long_x, short_x), abs=1e-3)


def test_positive_funding_tilts_the_funding_variant_long_and_keeps_the_pre_funding_split():
    dists = build_distributions(PRICE, NOTIONAL, P_LONG, signals(funding_rate_8h=0.0003))
    f = dists["funding"]
    share = f.long_usd.sum() / totals(f)
    assert share == pytest.approx(1.199 / 2, abs=1e-3)
    assert np.allclose(f.long_share_pre_funding, 0.5)
    assert np.allclose(dists["hybrid"].long_share_pre_funding, P_LONG)
    assert dists["hybrid"].long_usd.sum() / totals(dists["hybrid"]) > \
        dists["ofi"].long_usd.sum() / totals(dists["ofi"])


def test_oi_delta_boosts_bins_near_mark_only_in_hybrid():
    rising = build_distributions(PRICE, NOTIONAL, P_LONG, signals(oi_usd=8.8e9, oi_24h_ago_usd=8e9))  # ΔOI +10 %
    h, o = rising["hybrid"], rising["ofi"]
    ratio = (h.long_usd + h.short_usd) / (o.long_usd + o.short_usd)
    near = np.abs(PRICE - 100_000) <= 5_000
    # Near-mark bins get × 1.05 relative to far bins, then one common scale factor.
    assert np.allclose(ratio[near] / ratio[~near].mean(), 1.05)
    assert np.allclose(ratio[~near], ratio[~near][0])
    small = build_distributions(PRICE, NOTIONAL, P_LONG, signals(oi_usd=8.3e9, oi_24h_ago_usd=8e9))  # +3.75 %
    assert np.allclose(small["hybrid"].long_usd, small["ofi"].long_usd)


def test_stale_or_missing_oi_turns_the_oi_delta_off_with_a_flag():
    for s in (signals(oi_usd=9.6e9, oi_24h_ago_usd=8e9, flags=(pos.FLAG_OI_STALE,)),
              signals(oi_usd=9.6e9, oi_24h_ago_usd=None, flags=(pos.FLAG_NO_OI_24H,))):
        assert pos.oi_delta(s) is None
        dists = build_distributions(PRICE, NOTIONAL, P_LONG, s)
        assert np.allclose(dists["hybrid"].long_usd, dists["ofi"].long_usd)
        assert "oi_delta_off" in dists["hybrid"].flags


def test_missing_open_interest_leaves_the_variants_unscaled_and_flagged():
    dists = build_distributions(PRICE, NOTIONAL, P_LONG, signals(oi_usd=None, flags=(pos.FLAG_NO_OI,)))
    assert totals(dists["volume_5050"]) == pytest.approx(NOTIONAL.sum())
    assert all(pos.FLAG_UNSCALED in d.flags for d in dists.values())


def test_bad_inputs_are_rejected_with_specific_messages():
    with pytest.raises(ValueError, match="one length"):
        build_distributions(PRICE, NOTIONAL[:3], P_LONG, signals())
    with pytest.raises(ValueError, match="long_prob must lie"):
        build_distributions(PRICE, NOTIONAL, P_LONG + 0.5, signals())
    with pytest.raises(ValueError, match="no traded notional"):
        build_distributions(PRICE, NOTIONAL * 0, P_LONG, signals())
    with pytest.raises(ValueError, match="open interest must be positive"):
        build_distributions(PRICE, NOTIONAL, P_LONG, signals(oi_usd=0.0))


# -------------------------------------------------------------------------------- warehouse signals
@pytest.fixture
def con():
    c = duckdb.connect(":memory:")
    ensure_tables(c)
    yield c
    c.close()


def add_oi(con, times, values, stale=False):
    con.executemany("INSERT INTO raw.open_interest VALUES ('BTCUSDT', ?, ?, ?, ?, NULL, NULL, NULL, NULL, ?, 't')",
                    [[t.date(), t, v / 1e5, v, stale] for t, v in zip(times, values, strict=True)])


def add_mark(con, table, open_time, close):
    con.execute(f"INSERT INTO {table} VALUES ('BTCUSDT', ?, '1m', ?, ?, ?, ?, ?, 0, ?, 0, 0, 0, 0, 't')",
                [open_time.date(), open_time, close, close, close, close, open_time + dt.timedelta(seconds=59.999)])


def add_funding(con, t, rate_8h):
    con.execute("INSERT INTO raw.funding_rates VALUES ('BTCUSDT', ?, ?, ?, 8, ?, ?, 't')", [t.date(), t, t, rate_8h, rate_8h])


def test_signals_use_the_last_sample_before_as_of_never_a_later_one(con):
    hour = dt.timedelta(hours=1)
    # Hourly OI, including a sample exactly at as_of and one after it.
    times = [AS_OF - 25 * hour, AS_OF - 24 * hour, AS_OF - hour, AS_OF, AS_OF + hour]
    add_oi(con, times, [1.0e9, 1.1e9, 1.2e9, 1.3e9, 9.9e9])
    add_mark(con, "raw.mark_price_klines", AS_OF - dt.timedelta(minutes=1), 99_000.0)
    add_mark(con, "raw.mark_price_klines", AS_OF, 150_000.0)
    add_funding(con, AS_OF - 8 * hour, 0.0002)
    add_funding(con, AS_OF, 0.0009)
    end_of_day = signals_from_warehouse(con, "BTCUSDT", AS_OF, inclusive=False)
    assert (end_of_day.oi_usd, end_of_day.oi_24h_ago_usd) == (1.2e9, 1.1e9)
    # funding settled at the as-of instant is published then: included even at the end of the day
    assert end_of_day.mark_price == 99_000.0 and end_of_day.funding_rate_8h == 0.0009
    assert end_of_day.flags == ()
    at = signals_from_warehouse(con, "BTCUSDT", AS_OF)
    assert at.oi_usd == 1.3e9 and at.funding_rate_8h == 0.0009
    assert at.mark_price == 99_000.0  # the candle opening at as_of has not closed yet


def test_signals_flag_stale_too_old_and_fallback_values(con):
    add_oi(con, [AS_OF - dt.timedelta(minutes=5)], [2e9], stale=True)
    add_oi(con, [AS_OF - dt.timedelta(hours=27)], [1e9])  # 3 h before the 24h-ago instant: too old
    add_mark(con, "raw.klines", AS_OF - dt.timedelta(minutes=1), 101_000.0)
    s = signals_from_warehouse(con, "BTCUSDT", AS_OF, inclusive=False)
    assert s.oi_usd == 2e9 and s.oi_24h_ago_usd is None and s.funding_rate_8h is None
    assert s.mark_price == 101_000.0
    assert set(s.flags) == {pos.FLAG_OI_STALE, pos.FLAG_NO_OI_24H, pos.FLAG_NO_FUNDING, pos.FLAG_MARK_FROM_TRADES}
    with pytest.raises(ValueError, match="naive UTC"):
        signals_from_warehouse(con, "BTCUSDT", AS_OF.replace(tzinfo=dt.UTC))


def test_signals_without_any_raw_table_are_all_missing():
    c = duckdb.connect(":memory:")
    s = signals_from_warehouse(c, "BTCUSDT", AS_OF)
    assert (s.mark_price, s.oi_usd, s.oi_24h_ago_usd, s.funding_rate_8h) == (None, None, None, None)
    assert pos.FLAG_NO_MARK in s.flags and pos.FLAG_NO_OI in s.flags


# ----------------------------------------------------------------------------------- levels at risk
GRID = PriceGrid("relative", 0.001)
TABLE = table_for("BTCUSDT", dt.date(2026, 1, 10)).table
MIX = LeverageMix.of(MODEL.leverages, MODEL.leverage_weights)
SIZES = SizeBuckets(np.array([2_000.0, 60_000.0, 1_500_000.0]), np.array([0.3, 0.3, 0.4]))


def at_risk(long_usd, short_usd, low, high):
    return pos.levels_at_risk(PRICE, long_usd, short_usd, low, high, GRID, TABLE, MIX, SIZES)


def test_levels_at_risk_without_crossing_equal_project_levels():
    nan = np.full(PRICE.shape, np.nan)
    got = at_risk(NOTIONAL * P_LONG, NOTIONAL * (1 - P_LONG), nan, nan)
    ref = project_levels(PRICE, NOTIONAL * P_LONG, NOTIONAL * (1 - P_LONG), GRID, TABLE, MIX, SIZES)
    assert got.consumed_usd == 0 and got.unpriced_usd == ref.unpriced_usd
    assert got.bin_id.tolist() == ref.bin_id.tolist() and got.side.tolist() == ref.side.tolist()
    assert np.allclose(got.notional_usd, ref.notional_usd) and np.allclose(got.collateral_usd, ref.collateral_usd)
    assert got.notional_usd.sum() + got.unpriced_usd == pytest.approx(NOTIONAL.sum(), rel=1e-12)
    # Representative price lies inside its bin.
    assert np.all((got.price >= GRID.low(got.bin_id) - 1e-6) & (got.price < GRID.high(got.bin_id) + 1e-6))


def test_crossed_levels_are_consumed_and_survivors_lie_on_the_right_side_of_mark():
    mark = 100_000.0
    # Mark fell to 95,000 after every bin's last trade and is back at 100,000 now.
    since = np.full(PRICE.shape, np.datetime64("2026-01-10T06:00"))
    candles = np.array(["2026-01-10T12:00", "2026-01-10T18:00"], dtype="datetime64[us]")
    low, high = pos.mark_extremes_since(since, candles, np.array([95_000.0, 99_500.0]),
                                        np.array([101_000.0, 100_500.0]), mark)
    assert np.allclose(low, 95_000.0) and np.allclose(high, 101_000.0)
    got = at_risk(NOTIONAL * P_LONG, NOTIONAL * (1 - P_LONG), low, high)
    longs, shorts = got.side == LONG, got.side == SHORT
    assert np.all(got.price[longs] < 95_000.0) and np.all(got.price[shorts] > 101_000.0)
    assert got.consumed_usd > 0
    assert got.notional_usd.sum() + got.consumed_usd + got.unpriced_usd == pytest.approx(NOTIONAL.sum(), rel=1e-12)
    # The 90,000 bin's 5x longs (LP ≈ 72,300) survive a dip to 95,000.
    assert got.notional_usd[longs].sum() > 0


def test_mark_extremes_ignore_candles_before_the_last_trade_and_include_the_current_mark():
    candles = np.array(["2026-01-10T01:00", "2026-01-10T02:00", "2026-01-10T03:00"], dtype="datetime64[us]")
    lows, highs = np.array([90.0, 95.0, 97.0]), np.array([110.0, 105.0, 103.0])
    since = np.array(["2026-01-10T00:30", "2026-01-10T01:00", "2026-01-10T02:30", "2026-01-10T05:00"],
                     dtype="datetime64[us]")
    low, high = pos.mark_extremes_since(since, candles, lows, highs, None)
    assert low[:3].tolist() == [90.0, 95.0, 97.0] and np.isnan(low[3])
    assert high[:3].tolist() == [110.0, 105.0, 103.0] and np.isnan(high[3])
    low, high = pos.mark_extremes_since(since, candles, lows, highs, 96.0)
    assert low.tolist() == [90.0, 95.0, 96.0, 96.0] and high.tolist() == [110.0, 105.0, 103.0, 96.0]
