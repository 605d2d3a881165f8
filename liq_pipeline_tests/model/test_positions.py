"""Position-distribution variants, the warehouse signals record (no lookahead) and levels at risk."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pytest

from liq_pipeline.config import MODEL
from liq_pipeline.model import positions as pos
from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.model.levels import LeverageMix, SizeBuckets
from liq_pipeline.model.margin import table_for
from liq_pipeline.model.positions import PositionSignals
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


@pytest.mark.parametrize("f,long_x,short_x", [
    (0.0001, 1.0, 1.0), (0.00015, 1.181, 0.819), (0.0002, 1.193, 0.807), (0.0005, 1.200, 0.800),
    (-0.0002, 0.807, 1.193), (-0.0001, 1.0, 1.0), (None, 1.0, 1.0),
])
def test_funding_multipliers_follow_the_reference_table(f, long_x, short_x):
    got = pos.funding_multipliers(f)
    assert got == pytest.approx((long_x, short_x), abs=1e-3)


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


