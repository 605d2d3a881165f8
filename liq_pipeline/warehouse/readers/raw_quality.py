"""Counts over one stored raw partition that the raw assets' checks judge (`raw.agg_trades`, `raw.klines`,
`raw.mark_price_klines`, `raw.premium_index_klines`, `raw.open_interest`, `raw.funding_rates`; DDL in
schema.py). Table names come from the assets' own list, never from input."""

import datetime as dt

import duckdb


def time_range(con: duckdb.DuckDBPyConnection, table: str, time_col: str, symbol: str, day: dt.date
               ) -> tuple[str, str]:
    """First and last `time_col` of the partition as text ('' when empty)."""
    lo, hi = con.execute(f"SELECT min({time_col}), max({time_col}) FROM {table} WHERE symbol = ? AND day = ?",
                         [symbol, day]).fetchone()
    return (str(lo) if lo else "", str(hi) if hi else "")


def agg_trade_id_gaps(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> tuple[int, int, int, int]:
    """(gaps, ids missing in them, first id, last id) of the partition's aggregate-trade ids."""
    return con.execute(
        """SELECT count(*) FILTER (WHERE agg_trade_id - prev > 1), coalesce(sum(agg_trade_id - prev - 1) FILTER (WHERE agg_trade_id - prev > 1), 0),
                  min(agg_trade_id), max(agg_trade_id)
           FROM (SELECT agg_trade_id, lag(agg_trade_id) OVER (ORDER BY agg_trade_id) AS prev
                 FROM raw.agg_trades WHERE symbol = ? AND day = ?)""", [symbol, day]).fetchone()


def agg_trades_outside_day(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> int:
    """Stored trades of the partition whose transact_time is not on its day."""
    return con.execute(
        "SELECT count(*) FROM raw.agg_trades WHERE symbol = ? AND day = ? AND CAST(transact_time AS DATE) <> day",
        [symbol, day]).fetchone()[0]


def kline_rows(con: duckdb.DuckDBPyConnection, table: str, symbol: str, day: dt.date) -> tuple[int, str | None]:
    """(candles on the partition's day, their interval) of a kline table."""
    return con.execute(
        f"SELECT count(*), any_value(interval) FROM {table} WHERE symbol = ? AND day = ? AND CAST(open_time AS DATE) = day",
        [symbol, day]).fetchone()


def open_interest_rows(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> tuple[int, int]:
    """(OI samples, of them forward-filled) of the partition."""
    return con.execute(
        "SELECT count(*), count(*) FILTER (WHERE is_stale) FROM raw.open_interest WHERE symbol = ? AND day = ?",
        [symbol, day]).fetchone()


def funding_rows(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> tuple[int, int | None]:
    """(settlements, the longest funding interval in hours) of the partition."""
    return con.execute(
        "SELECT count(*), max(funding_interval_hours) FROM raw.funding_rates WHERE symbol = ? AND day = ?",
        [symbol, day]).fetchone()
