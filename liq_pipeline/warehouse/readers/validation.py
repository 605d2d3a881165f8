"""Readers for the validation checks: the latest materialized day per symbol of a model table and the stored
results of a paired test (`model.validation_results`; DDL in schema.py)."""

import datetime as dt

import duckdb
import pandas as pd


def latest_day_per_symbol(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, dt.date]]:
    """(symbol, last day) of every symbol in `table` (one of the warehouse's own tables)."""
    rows = con.execute(f"SELECT symbol, max(day) FROM {table} GROUP BY symbol ORDER BY symbol").fetchall()
    return [(s, d) for s, d in rows if d is not None]


def latest_validation_day(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The newest month of model.validation_results (None when empty)."""
    return con.execute("SELECT max(day) FROM model.validation_results").fetchone()[0]


def validation_results(con: duckdb.DuckDBPyConnection, months: list[dt.date], test: str) -> pd.DataFrame:
    """symbol, day, metric, value, verdict, detail of one test's stored results in the given months."""
    return con.execute("""
        SELECT symbol, day, metric, value, verdict, detail FROM model.validation_results
        WHERE day IN (SELECT unnest(?::DATE[])) AND test = ?""", [months, test]).df()
