"""Readers of the volume-profile tables (`model.volume_profile_daily`, `model.volume_profile_baseline`,
`model.ofi_bins`; DDL in schema.py, built by warehouse/profile_sql.py) and of the mark candles and signals
the seed's distribution and levels read (`raw.mark_price_klines`, `raw.klines`, `model.position_signals`,
`model.position_distribution`)."""

import datetime as dt

import duckdb
import pandas as pd

from liq_pipeline.warehouse.catalog import table_exists


def daily_profile(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> pd.DataFrame:
    """The day's volume profile, largest bins first."""
    return con.execute("""SELECT bin_id, price_low, price_high, notional_usd, buy_qty, sell_qty, vwap,
                                 trade_count, split_known, source
                          FROM model.volume_profile_daily WHERE symbol = ? AND day = ?
                          ORDER BY notional_usd DESC""", [symbol, day]).df()


def baseline_profile(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> pd.DataFrame:
    """The window profile of the day, largest bins first."""
    return con.execute("""SELECT bin_id, price_low, price_high, notional_usd, buy_qty, sell_qty, vwap,
                                 trade_count, days_in_window
                          FROM model.volume_profile_baseline WHERE symbol = ? AND day = ?
                          ORDER BY notional_usd DESC""", [symbol, day]).df()


def ofi_bins(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> pd.DataFrame:
    """OFI and long probability per bin of the day's window, by bin."""
    return con.execute("""SELECT bin_id, price_mid, buy_qty, sell_qty, ofi, long_prob, split_known
                          FROM model.ofi_bins WHERE symbol = ? AND day = ? ORDER BY bin_id""", [symbol, day]).df()


def baseline_with_long_prob(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> pd.DataFrame:
    """bin_id, price_mid, notional_usd (window profile) and long_prob (OFI) per bin; LookupError naming the
    asset to materialize when the tables are missing."""
    if not table_exists(con, "model.ofi_bins"):
        raise LookupError("model.ofi_bins does not exist: materialize ofi_bins first")
    return con.execute("""
        SELECT b.bin_id, o.price_mid, b.notional_usd, o.long_prob
        FROM model.volume_profile_baseline b
        JOIN model.ofi_bins o ON o.symbol = b.symbol AND o.day = b.day AND o.bin_id = b.bin_id
        WHERE b.symbol = ? AND b.day = ? ORDER BY b.bin_id""", [symbol, day]).df()


def distribution_with_last_trade(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> pd.DataFrame:
    """The day's position distribution of every variant with each bin's last trade time in the window."""
    if not table_exists(con, "model.position_distribution"):
        return pd.DataFrame()
    return con.execute("""
        SELECT d.variant, d.bin_id, d.price_mid, d.long_usd, d.short_usd, b.last_trade_time
        FROM model.position_distribution d
        JOIN model.volume_profile_baseline b ON b.symbol = d.symbol AND b.day = d.day AND b.bin_id = d.bin_id
        WHERE d.symbol = ? AND d.day = ? ORDER BY d.variant, d.bin_id""", [symbol, day]).df()


def stored_mark(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> float | None:
    """The mark price recorded in model.position_signals for the day (None when missing)."""
    marks = con.execute("SELECT mark_price FROM model.position_signals WHERE symbol = ? AND day = ?",
                        [symbol, day]).fetchall()
    return float(marks[0][0]) if marks and marks[0][0] is not None else None


def mark_candles(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.date, as_of: dt.datetime
                 ) -> tuple[pd.DataFrame, str]:
    """Mark-price candles (any interval) opened in the window before as_of; trade klines if none."""
    for table, note in (("raw.mark_price_klines", "mark price klines"),
                        ("raw.klines", "trade klines (no mark price klines): consumption approximate")):
        if table_exists(con, table):
            frame = con.execute(f"""SELECT open_time, low, high FROM {table}
                                    WHERE symbol = ? AND day BETWEEN ? AND ? AND open_time < ?
                                    ORDER BY open_time""", [symbol, start, as_of.date(), as_of]).df()
            if not frame.empty:
                return frame, note
    return pd.DataFrame({"open_time": pd.Series([], dtype="datetime64[us]"), "low": [], "high": []}), \
        "no mark or trade klines: nothing consumed"
