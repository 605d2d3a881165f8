"""Per-step consumption range when the mark-price klines are coarser than the step (1h mark klines under
15-minute steps, as in kline-only mirrors): the finer last-price klines resolve the step, so an hour's mark
extreme does not consume positions opened after it inside the hour."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from liq_pipeline.config import MODEL
from liq_pipeline.model.grid import grid_for
from liq_pipeline.warehouse.readers.raw_day import load_day_inputs
from liq_pipeline.warehouse.schema import ensure_tables

SYMBOL = "BTCUSDT"
DAY = dt.date(2026, 1, 10)
GRID = grid_for(SYMBOL, MODEL)


def _candles(con, table: str, interval: str, minutes: int, close: np.ndarray, low: np.ndarray) -> None:
    t = pd.date_range(dt.datetime.combine(DAY, dt.time()), periods=close.size, freq=f"{minutes}min")
    ensure_tables(con, table)
    con.register("_rows", pd.DataFrame({
        "symbol": SYMBOL, "day": DAY, "interval": interval, "open_time": t, "open": close, "high": close,
        "low": low, "close": close, "volume": 1.0, "close_time": t + pd.Timedelta(minutes=minutes) - pd.Timedelta(1, "ms"),
        "quote_volume": close, "trade_count": 0, "taker_buy_volume": 0.5, "taker_buy_quote_volume": close / 2,
        "source": "test"}))
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    con.unregister("_rows")


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield c
    c.close()


def _hourly_mark_with_a_wick(con) -> None:
    """1h mark klines at 100,000 whose 10:00 hour dips to 94,000 (in its first quarter, as the 15m last-price
    klines show: 94,100 in the 10:00-10:15 candle)."""
    close = np.full(24, 100_000.0)
    low = close.copy()
    low[10] = 94_000.0
    close[10] = 100_050.0
    _candles(con, "raw.mark_price_klines", "1h", 60, close, low)


def test_hourly_mark_klines_give_way_to_15m_last_price_klines_step_by_step(con):
    _hourly_mark_with_a_wick(con)
    close = np.full(96, 100_000.0)
    low = close.copy()
    low[40] = 94_100.0
    _candles(con, "raw.klines", "15m", 15, close, low)
    d = load_day_inputs(con, SYMBOL, DAY, GRID, 15)
    assert d.mark_low[40] == 94_100.0  # the step that holds the wick
    assert np.all(d.mark_low[41:44] == 100_000.0)  # the hour's later steps do not repeat its low
    assert np.nanmin(np.delete(d.mark_low, 40)) == 100_000.0
    assert d.mark_source == "klines"
    assert any("coarser than the 15-minute step in 96 of 96 steps: last-price klines used" in f for f in d.flags)
    # The closing step of a mark candle keeps the mark close (the end-of-day mark is a mark).
    assert d.mark_close[43] == 100_050.0


def test_hourly_mark_klines_alone_consume_at_the_step_that_closes_each_hour(con):
    _hourly_mark_with_a_wick(con)
    d = load_day_inputs(con, SYMBOL, DAY, GRID, 15)
    assert d.mark_low[43] == 94_000.0  # the 10:00 hour closes in the 10:45-11:00 step
    assert np.isnan(d.mark_low[40:43]).all()
    assert d.mark_source == "mark_price_klines"
    assert any("24 of 96 steps consumed on mark_price_klines longer than the 15-minute step" in f for f in d.flags)


def test_mark_klines_as_fine_as_the_step_are_used_even_when_last_price_klines_exist(con):
    close = np.full(96, 100_000.0)
    mark_low = close.copy()
    mark_low[40] = 95_000.0
    _candles(con, "raw.mark_price_klines", "15m", 15, close, mark_low)
    last_low = close.copy()
    last_low[40] = 94_000.0
    _candles(con, "raw.klines", "15m", 15, close, last_low)
    d = load_day_inputs(con, SYMBOL, DAY, GRID, 15)
    assert d.mark_low[40] == 95_000.0
    assert d.mark_source == "mark_price_klines"
    assert not any("last-price klines used" in f or "longer than" in f for f in d.flags)
