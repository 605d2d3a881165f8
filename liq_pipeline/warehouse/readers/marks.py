"""Readers of the price candles (`raw.mark_price_klines`, `raw.klines`; DDL in schema.py) that the validation,
the live "now" map and the backtest price their paths with. Times are naive UTC, prices USD."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.warehouse.catalog import table_exists


def finest_mark_candles(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.datetime, end: dt.datetime
                        ) -> pd.DataFrame | None:
    """open_time, low, high of the finest mark-price candles (the interval with the shortest candle of those
    opening before `end`) opening in [start, end), by open time. None when no mark candle opens before `end`."""
    row = con.execute("""SELECT interval FROM raw.mark_price_klines WHERE symbol = ? AND open_time < ?
                         GROUP BY interval ORDER BY min(close_time - open_time) LIMIT 1""", [symbol, end]).fetchone()
    if row is None:
        return None
    return con.execute("""SELECT open_time, low, high FROM raw.mark_price_klines
                          WHERE symbol = ? AND interval = ? AND open_time >= ? AND open_time < ?
                          ORDER BY open_time""", [symbol, row[0], start, end]).df()


def last_mark_close(con: duckdb.DuckDBPyConnection, symbol: str, end: dt.datetime) -> float | None:
    """The close of the last mark-price candle opening before `end` (None when none)."""
    row = con.execute("""SELECT close FROM raw.mark_price_klines WHERE symbol = ? AND open_time < ?
                         ORDER BY open_time DESC LIMIT 1""", [symbol, end]).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def mark_candles_after(con: duckdb.DuckDBPyConnection, symbol: str, since: np.datetime64) -> pd.DataFrame:
    """Mark-price candles (open_time, low, high) of `symbol` opening after `since`; empty when none stored."""
    if not table_exists(con, "raw.mark_price_klines"):
        return pd.DataFrame({"open_time": np.array([], dtype="datetime64[us]"), "low": [], "high": []})
    return con.execute("""SELECT open_time, low, high FROM raw.mark_price_klines
                          WHERE symbol = ? AND open_time > ? ORDER BY open_time""",
                       [symbol, pd.Timestamp(since).to_pydatetime()]).df()


def candles_in_range(con: duckdb.DuckDBPyConnection, table: str, symbol: str, start: dt.datetime, end: dt.datetime
                     ) -> pd.DataFrame:
    """open_time, open, high, low, interval of every candle of `table` (a kline table of schema.py) opening in
    [start, end), every interval."""
    return con.execute(f"""SELECT open_time, open, high, low, interval FROM {table}
                           WHERE symbol = ? AND open_time >= ? AND open_time < ?""", [symbol, start, end]).df()


def kline_trade_counts(con: duckdb.DuckDBPyConnection, symbol: str, first: dt.date, last: dt.date
                       ) -> tuple[int, int]:
    """(last-price klines with a trade count > 0, all last-price klines) of the days first..last."""
    return con.execute(
        """SELECT count(*) FILTER (WHERE trade_count > 0), count(*) FROM raw.klines
           WHERE symbol = ? AND day BETWEEN ? AND ?""", [symbol, first, last]).fetchone()
