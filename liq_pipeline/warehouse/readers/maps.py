"""Readers of the stored maps (`model.liquidation_levels`, `model.liquidation_heatmap`,
`model.position_distribution`; DDL in schema.py) that the validation layer scores: a day's levels, the
end-of-day snapshot, the snapshots of a time range, and which symbols, variants and days are materialized."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd


def day_levels(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, variant: str) -> pd.DataFrame:
    """side, bin_id, price, notional_usd of a variant's liquidation levels of the day."""
    return con.execute("""SELECT side, bin_id, price, notional_usd FROM model.liquidation_levels
                          WHERE symbol = ? AND day = ? AND variant = ?""", [symbol, day, variant]).df()


def end_of_day_snapshot(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, variant: str) -> pd.DataFrame:
    """side, bin_id, price, notional_usd of a variant's last heatmap snapshot of the day partition."""
    return con.execute("""
        SELECT side, bin_id, price, notional_usd FROM model.liquidation_heatmap
        WHERE symbol = ? AND day = ? AND variant = ? AND snapshot_time = (
            SELECT max(snapshot_time) FROM model.liquidation_heatmap WHERE symbol = ? AND day = ? AND variant = ?)""",
        [symbol, day, variant, symbol, day, variant]).df()


def snapshots_between(con: duckdb.DuckDBPyConnection, symbol: str, variant: str, start: dt.datetime,
                      end: dt.datetime) -> pd.DataFrame:
    """snapshot_time, side, price, notional_usd of a variant's heatmap cells with start <= snapshot_time < end."""
    return con.execute("""SELECT snapshot_time, side, price, notional_usd FROM model.liquidation_heatmap
                          WHERE symbol = ? AND variant = ? AND snapshot_time < ? AND snapshot_time >= ?""",
                       [symbol, variant, end, start]).df()


def heatmap_symbols(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every symbol with a heatmap, sorted."""
    return [r[0] for r in con.execute("SELECT DISTINCT symbol FROM model.liquidation_heatmap ORDER BY 1").fetchall()]


def heatmap_variants_between(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.datetime, end: dt.datetime
                             ) -> set[str]:
    """The variants with a heatmap snapshot of `symbol` at start <= snapshot_time < end."""
    return {r[0] for r in con.execute("""SELECT DISTINCT variant FROM model.liquidation_heatmap
                                         WHERE symbol = ? AND snapshot_time < ? AND snapshot_time >= ?""",
                                      [symbol, end, start]).fetchall()}


def distribution_days(con: duckdb.DuckDBPyConnection, symbol: str, first: dt.date, last: dt.date) -> list[dt.date]:
    """The days first..last with a position distribution of `symbol`, in order."""
    return [r[0] for r in con.execute("""SELECT DISTINCT day FROM model.position_distribution
                                         WHERE symbol = ? AND day BETWEEN ? AND ? ORDER BY day""",
                                      [symbol, first, last]).fetchall()]
