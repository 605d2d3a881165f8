"""Reader of the open-interest samples (`raw.open_interest`; DDL in schema.py) the backtest's baselines scale
by. Times are naive UTC, amounts USD."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd


def fresh_samples(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """time, oi_usd of the non-stale OI samples of `symbol` with start <= create_time < end (scan order)."""
    return con.execute("""SELECT create_time AS time, sum_open_interest_value AS oi_usd FROM raw.open_interest
                          WHERE symbol = ? AND NOT is_stale AND create_time < ? AND create_time >= ?""",
                       [symbol, end, start]).df()
