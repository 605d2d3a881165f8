"""Readers behind the live layer (pipeline/live.py): which partitions an ingest status filled
(`raw.ingest_log`) and the latest stored real-time signals (`model.position_signals`); DDL in schema.py."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pandas as pd

from liq_pipeline.warehouse.catalog import table_exists


def partitions_with_status(con: duckdb.DuckDBPyConnection, status: str) -> pd.DataFrame:
    """(symbol, day, table_name) of the raw.ingest_log rows with `status`, by day, symbol, table; empty
    columns when the log does not exist."""
    if not table_exists(con, "raw.ingest_log"):
        return pd.DataFrame({"symbol": [], "day": [], "table_name": []})
    return con.execute("SELECT symbol, day, table_name FROM raw.ingest_log WHERE status = ? "
                       "ORDER BY day, symbol, table_name", [status]).df()


@dataclass(frozen=True)
class BaselineSignals:
    """The warehouse's last model.position_signals row: the fallback of every live signal."""

    day: dt.date | None
    mark_price: float | None = None
    oi_usd: float | None = None
    oi_24h_ago_usd: float | None = None
    funding_rate_8h: float | None = None


def latest_signals(con: duckdb.DuckDBPyConnection, symbol: str) -> BaselineSignals:
    """Latest model.position_signals row of `symbol` (all None when the table or row is missing)."""
    if not table_exists(con, "model.position_signals"):
        return BaselineSignals(None)
    row = con.execute("""SELECT day, mark_price, oi_usd, oi_24h_ago_usd, funding_rate_8h FROM model.position_signals
                         WHERE symbol = ? ORDER BY day DESC, as_of DESC LIMIT 1""", [symbol]).fetchone()
    return BaselineSignals(*row) if row else BaselineSignals(None)
