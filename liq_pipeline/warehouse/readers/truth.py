"""Readers of the simulator's ground truth (`truth.positions`, `truth.open_positions`; DDL in schema.py) for the
validation layer only: the estimator never reads these (the drop-truth test)."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.warehouse.catalog import table_exists


def has_positions(con: duckdb.DuckDBPyConnection, symbol: str) -> bool:
    """Whether truth.positions holds any position of `symbol` (the table must exist)."""
    return bool(con.execute("SELECT count(*) > 0 FROM truth.positions WHERE symbol = ?", [symbol]).fetchone()[0])


def open_positions_at_end(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> pd.DataFrame:
    """The speculators' positions open at the end of `day`: side, open_time, entry_price, quantity, leverage,
    isolated_margin_usd, liq_price, notional_usd (quantity × entry price, USD), mark_price. The liquidation
    price is the one **in force** then (truth.open_positions: margins moved by funding and top-ups), the open
    time from truth.positions; a warehouse without that table or day (an older simulation) falls back to
    truth.positions and the price at opening (mark_price NULL). Rows come in position order: a join's order is
    DuckDB's to choose, and the sums over them would otherwise differ in the last bits from run to run."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    if table_exists(con, "truth.open_positions"):
        in_force = con.execute("""
            SELECT o.side, p.open_time, o.entry_price, o.quantity, o.leverage, o.isolated_margin_usd, o.liq_price,
                   o.quantity * o.entry_price AS notional_usd, o.mark_price
            FROM truth.open_positions o JOIN truth.positions p ON p.symbol = o.symbol AND p.position_id = o.position_id
            WHERE o.symbol = ? AND o.day = ? AND o.population = 'speculator'
            ORDER BY o.position_id""", [symbol, day]).df()
        if len(in_force):
            return in_force
    return con.execute("""
        SELECT side, open_time, entry_price, quantity, leverage, isolated_margin_usd, liq_price,
               quantity * entry_price AS notional_usd, NULL::DOUBLE AS mark_price
        FROM truth.positions
        WHERE symbol = ? AND open_time < ? AND (close_time IS NULL OR close_time >= ?)
        ORDER BY position_id""",
        [symbol, end, end]).df()


def notional_per_leverage(con: duckdb.DuckDBPyConnection, symbol: str, end: dt.datetime
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(leverage, Σ quantity × entry price in USD) per distinct leverage > 0 of the positions opened before
    `end`."""
    rows = con.execute("""SELECT leverage, sum(quantity * entry_price) FROM truth.positions
                          WHERE symbol = ? AND open_time < ? AND leverage > 0 GROUP BY 1""", [symbol, end]).fetchall()
    return (np.array([r[0] for r in rows], dtype=np.float64), np.array([r[1] for r in rows], dtype=np.float64))
