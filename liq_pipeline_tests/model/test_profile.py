"""Volume profiles, the window baseline and OFI, computed by the SQL of model.profile on hand-made rows."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pytest

from liq_pipeline.config import ModelParams
from liq_pipeline.model import profile
from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.warehouse import profile_sql
from liq_pipeline.warehouse.io import replace_partition
from liq_pipeline.warehouse.schema import ensure_tables

DAY = dt.date(2026, 1, 10)
FIXED = PriceGrid("fixed", 100.0)


@pytest.fixture
def con():
    c = duckdb.connect(":memory:")
    ensure_tables(c)
    yield c
    c.close()


def add_trades(con, rows, symbol="BTCUSDT", day=DAY):
    """rows: (price, quantity, is_buyer_maker, seconds after midnight)."""
    start = dt.datetime.combine(day, dt.time())
    con.executemany(
        "INSERT INTO raw.agg_trades VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?)",
        [[symbol, day, i, p, q, start + dt.timedelta(seconds=s), m] for i, (p, q, m, s) in enumerate(rows)])


def add_kline(con, open_time, interval, o, h, low, c, volume, taker_buy, quote=None, day=DAY, trades=10):
    minutes = {"1m": 1, "5m": 5, "15m": 15, "1h": 60}[interval]
    quote = volume * c if quote is None else quote
    tb_quote = None if taker_buy is None else taker_buy * c
    con.execute("INSERT INTO raw.klines VALUES ('BTCUSDT', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'test')",
                [day, interval, open_time, o, h, low, c, volume,
                 open_time + dt.timedelta(minutes=minutes, milliseconds=-1), quote, trades, taker_buy, tb_quote])


def daily(con, sql, day=DAY):
    replace_partition(con, "model.volume_profile_daily", "BTCUSDT", day, sql, {"symbol": "BTCUSDT", "day": day})
    return con.execute("SELECT * FROM model.volume_profile_daily WHERE day = ? ORDER BY bin_id", [day]).df()


def test_daily_profile_bins_splits_vwap_and_last_trade(con):
    add_trades(con, [(100_050.0, 1.0, False, 10), (100_010.0, 3.0, True, 20), (100_150.0, 2.0, False, 30),
                     (100_099.9, 1.0, True, 40)])
    add_trades(con, [(100_050.0, 9.0, False, 10)], symbol="ETHUSDT")  # another symbol: ignored
    frame = daily(con, profile_sql.daily_profile_sql(FIXED))
    assert frame["bin_id"].tolist() == [1000, 1001]
    b0, b1 = frame.iloc[0], frame.iloc[1]
    assert (b0.price_low, b0.price_high) == (100_000.0, 100_100.0)
    assert b0.buy_qty == 1.0 and b0.sell_qty == 4.0
    assert b0.buy_notional_usd == pytest.approx(100_050.0)
    assert b0.sell_notional_usd == pytest.approx(3 * 100_010.0 + 100_099.9)
    assert b0.vwap == pytest.approx((100_050 + 3 * 100_010 + 100_099.9) / 5)
    assert b0.trade_count == 3 and b1.trade_count == 1
    assert b0.last_trade_time == dt.datetime(2026, 1, 10, 0, 0, 40)
    assert b1.notional_usd == pytest.approx(200_300.0) and b1.sell_qty == 0
    assert frame["split_known"].all() and set(frame["source"]) == {"aggTrades"}


def test_relative_grid_bins_in_sql_match_the_numpy_grid(con):
    grid = PriceGrid("relative", 0.001)
    prices = np.array([99_950.0, 100_000.0, 100_120.0, 101_000.5, 2_500.25])
    add_trades(con, [(p, 1.0, False, i) for i, p in enumerate(prices)])
    frame = daily(con, profile_sql.daily_profile_sql(grid))
    assert sorted(frame["bin_id"]) == sorted(set(grid.bin_id(prices).tolist()))
    assert np.allclose(frame["price_low"], grid.low(frame["bin_id"].to_numpy()))
    assert np.all((frame["vwap"] >= frame["price_low"]) & (frame["vwap"] < frame["price_high"]))


def test_klines_profile_uses_finest_interval_and_treats_half_split_as_unknown(con):
    t0 = dt.datetime(2026, 1, 10)
    # 1m candles: typical prices (h+l+c)/3 in bins 1000 and 1002.
    add_kline(con, t0, "1m", 100_000, 100_090, 100_000, 100_030, volume=2.0, taker_buy=1.5)   # typical 100,040
    add_kline(con, t0 + dt.timedelta(minutes=1), "1m", 100_000, 100_060, 100_000, 100_030, 4.0, 2.0)  # exactly half
    add_kline(con, t0 + dt.timedelta(minutes=2), "1m", 100_250, 100_260, 100_240, 100_250, 1.0, 2.0 / 2 - 0.25)
    add_kline(con, t0 + dt.timedelta(minutes=3), "1m", 100_250, 100_250, 100_250, 100_250, 0.0, 0.0)  # no volume
    add_kline(con, t0, "1h", 90_000, 90_000, 90_000, 90_000, 100.0, 80.0)  # coarser: ignored
    frame = daily(con, profile_sql.klines_profile_sql(FIXED))
    assert frame["bin_id"].tolist() == [1000, 1002]
    b0, b2 = frame.iloc[0], frame.iloc[1]
    # Bin 1000: the half-split candle counts in volume but not in the split.
    assert b0.notional_usd == pytest.approx(2.0 * 100_030 + 4.0 * 100_030)
    assert b0.buy_qty == 1.5 and b0.sell_qty == pytest.approx(0.5) and bool(b0.split_known)
    assert b0.trade_count == 20
    assert b2.buy_qty == 0.75 and b2.sell_qty == pytest.approx(0.25)
    assert set(frame["source"]) == {"klines_1m"}
    assert b2.last_trade_time == t0 + dt.timedelta(minutes=3, milliseconds=-1)


def test_klines_bin_with_only_half_split_candles_has_unknown_split_and_zero_ofi(con):
    add_kline(con, dt.datetime(2026, 1, 10), "5m", 100_000, 100_010, 99_990, 100_000, 6.0, 3.0)
    frame = daily(con, profile_sql.klines_profile_sql(FIXED))
    assert len(frame) == 1 and not frame["split_known"][0]
    assert np.isnan(frame["buy_qty"][0]) and np.isnan(frame["sell_qty"][0])
    assert frame["source"][0] == "klines_5m"
    base_and_ofi(con, DAY, ModelParams(window_days=1))
    ofi = con.execute("SELECT ofi, long_prob, split_known FROM model.ofi_bins").fetchall()
    assert ofi == [(0.0, 0.5, False)]


def base_and_ofi(con, day, params):
    args = {"symbol": "BTCUSDT", "day": day, "window_start": profile.window_start(day, params)}
    replace_partition(con, "model.volume_profile_baseline", "BTCUSDT", day, profile_sql.baseline_sql(), args)
    replace_partition(con, "model.ofi_bins", "BTCUSDT", day, profile_sql.ofi_sql(params), {"symbol": "BTCUSDT", "day": day})


def test_baseline_sums_the_daily_profiles_of_the_window_only(con):
    params = ModelParams(window_days=3)
    for k, day in enumerate([DAY - dt.timedelta(days=3), DAY - dt.timedelta(days=2), DAY - dt.timedelta(days=1), DAY]):
        add_trades(con, [(100_050.0, 1.0 + k, False, 5), (100_060.0, 1.0, True, 60 + k)], day=day)
        daily(con, profile_sql.daily_profile_sql(FIXED), day)
    base_and_ofi(con, DAY, params)
    base = con.execute("SELECT * FROM model.volume_profile_baseline").df()
    assert len(base) == 1
    row = base.iloc[0]
    # Days k = 1, 2, 3 are in the 3-day window ending on DAY; k = 0 is not.
    assert row.buy_qty == pytest.approx(2 + 3 + 4) and row.sell_qty == pytest.approx(3)
    assert row.notional_usd == pytest.approx(100_050 * 9 + 100_060 * 3)
    assert row.vwap == pytest.approx((100_050 * 9 + 100_060 * 3) / 12)
    assert row.trade_count == 6 and row.days_in_window == 3
    assert row.last_trade_time == dt.datetime.combine(DAY, dt.time(0, 1, 3))


def test_ofi_and_long_probability_on_hand_made_trades(con):
    # Bin 1000: buy 3, sell 1 → OFI 0.5; bin 1001: sell only → −1; bin 1002: balanced → 0.
    add_trades(con, [(100_010.0, 2.0, False, 1), (100_020.0, 1.0, False, 2), (100_030.0, 1.0, True, 3),
                     (100_110.0, 0.4, True, 4), (100_250.0, 1.0, False, 5), (100_260.0, 1.0, True, 6)])
    daily(con, profile_sql.daily_profile_sql(FIXED))
    base_and_ofi(con, DAY, ModelParams())
    frame = con.execute("SELECT bin_id, price_mid, ofi, long_prob FROM model.ofi_bins ORDER BY bin_id").df()
    assert frame["ofi"].tolist() == pytest.approx([0.5, -1.0, 0.0])
    assert frame["long_prob"].tolist() == pytest.approx([0.7223, 0.1832, 0.5], abs=1e-4)
    assert frame["price_mid"].tolist() == pytest.approx([100_050.0, 100_150.0, 100_250.0])
    assert np.allclose(frame["long_prob"], profile.long_probability(frame["ofi"].to_numpy()))


def test_long_probability_table_of_the_reference():
    ofi = np.array([-1, -0.5, 0, 0.2, 0.5, 1])
    expected = [0.1832, 0.2777, 0.5, 0.6020, 0.7223, 0.8168]
    assert profile.long_probability(ofi).tolist() == pytest.approx(expected, abs=1e-4)
    assert profile.ofi(np.array([3.0, 0.0, np.nan]), np.array([1.0, 0.0, 2.0])).tolist() == [0.5, 0.0, -1.0]


def test_window_start_and_its_validation():
    assert profile.window_start(DAY) == DAY - dt.timedelta(days=29)
    with pytest.raises(ValueError, match="window_days must be at least 1"):
        profile.window_start(DAY, ModelParams(window_days=0))
