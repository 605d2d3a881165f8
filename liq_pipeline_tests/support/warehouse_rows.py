"""Hand-made warehouse rows for the model and CLI tests: one day of 1m candles, 5m open interest, one trade a
minute, and the previous day's levels and position distribution, each written with the table's own schema."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.model.grid import grid_for
from liq_pipeline.warehouse.schema import ensure_tables

SYMBOL = "BTCUSDT"
DAY = dt.date(2026, 1, 5)
GRID = grid_for(SYMBOL)


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame) -> None:
    ensure_tables(con, table)
    con.register("_rows", df)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    con.unregister("_rows")


def minute_times(day: dt.date) -> pd.DatetimeIndex:
    return pd.date_range(dt.datetime.combine(day, dt.time()), periods=1440, freq="1min")


def insert_candles(con, table: str, day: dt.date, close: np.ndarray, high: np.ndarray | None = None,
                   low: np.ndarray | None = None, symbol: str = SYMBOL) -> None:
    """1m candles of one day; high/low default to the close."""
    t = minute_times(day)
    close = np.asarray(close, dtype=float)
    high = close if high is None else high
    low = close if low is None else low
    insert_frame(con, table, pd.DataFrame({
        "symbol": symbol, "day": day, "interval": "1m", "open_time": t, "open": close, "high": high, "low": low,
        "close": close, "volume": 1.0, "close_time": t + pd.Timedelta(milliseconds=59_999),
        "quote_volume": close * 1.0, "trade_count": 10, "taker_buy_volume": 0.5,
        "taker_buy_quote_volume": close * 0.5, "source": "test"}))


def insert_oi(con, day: dt.date, usd: np.ndarray, stale: np.ndarray | None = None, symbol: str = SYMBOL) -> None:
    """Open interest every 5 minutes (288 samples)."""
    t = pd.date_range(dt.datetime.combine(day, dt.time()), periods=288, freq="5min")
    insert_frame(con, "raw.open_interest", pd.DataFrame({
        "symbol": symbol, "day": day, "create_time": t, "sum_open_interest": np.asarray(usd) / 1e5,
        "sum_open_interest_value": np.asarray(usd, dtype=float),
        "is_stale": np.zeros(288, bool) if stale is None else stale, "source": "test"}))


def insert_trades(con, day: dt.date, price: np.ndarray, qty: float = 0.01, symbol: str = SYMBOL) -> None:
    """One aggTrade per minute at `price` (1440 values)."""
    t = minute_times(day) + pd.Timedelta(seconds=30)
    insert_frame(con, "raw.agg_trades", pd.DataFrame({
        "symbol": symbol, "day": day, "agg_trade_id": np.arange(1440), "price": np.asarray(price, dtype=float),
        "quantity": qty * np.linspace(0.5, 2.0, 1440), "first_trade_id": np.arange(1440),
        "last_trade_id": np.arange(1440), "transact_time": t, "is_buyer_maker": np.arange(1440) % 2 == 0}))


def insert_levels(con, day: dt.date, rows: list[tuple[str, float, float]], variant: str = "hybrid",
                  symbol: str = SYMBOL) -> None:
    """model.liquidation_levels rows (side, price, notional_usd) of `day`."""
    side, price, notional = (np.array(x) for x in zip(*rows, strict=True))
    bins = GRID.bin_id(price.astype(float))
    insert_frame(con, "model.liquidation_levels", pd.DataFrame({
        "symbol": symbol, "day": day, "variant": variant, "as_of": dt.datetime.combine(day, dt.time(23, 59)),
        "side": side, "bin_id": bins, "price": GRID.mid(bins), "notional_usd": notional.astype(float),
        "collateral_usd": notional.astype(float) / 10}))


def insert_distribution(con, day: dt.date, long_share: float, price: float = 100_000.0, variant: str = "hybrid",
                        total_usd: float = 1e9, symbol: str = SYMBOL) -> None:
    b = GRID.bin_id(np.array([price]))
    insert_frame(con, "model.position_distribution", pd.DataFrame({
        "symbol": symbol, "day": day, "variant": variant, "as_of": dt.datetime.combine(day, dt.time(23, 59)),
        "bin_id": b, "price_mid": GRID.mid(b), "long_usd": [total_usd * long_share],
        "short_usd": [total_usd * (1 - long_share)], "long_share_pre_funding": [long_share]}))


def flat_day(con, day: dt.date, price: float = 100_000.0, oi_usd: float = 1e9) -> np.ndarray:
    """A quiet day: flat mark and last price, one trade a minute, constant OI."""
    close = np.full(1440, price)
    insert_candles(con, "raw.mark_price_klines", day, close)
    insert_candles(con, "raw.klines", day, close)
    insert_trades(con, day, close)
    insert_oi(con, day, np.full(288, oi_usd))
    return close
