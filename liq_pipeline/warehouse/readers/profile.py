"""Readers of the volume-profile tables (`model.volume_profile_daily`, `model.volume_profile_baseline`,
`model.ofi_bins`; DDL in schema.py, built by warehouse/profile_sql.py) and of the mark candles and signals
the seed's distribution and levels read (`raw.mark_price_klines`, `raw.klines`, `model.position_signals`,
`model.position_distribution`)."""

import datetime as dt

import duckdb
import pandas as pd


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


def stored_mark(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> float | None:
    """The mark price recorded in model.position_signals for the day (None when missing)."""
    marks = con.execute("SELECT mark_price FROM model.position_signals WHERE symbol = ? AND day = ?",
                        [symbol, day]).fetchall()
    return float(marks[0][0]) if marks and marks[0][0] is not None else None


