"""The price level a symbol traded at around a day, from the raw tables already stored: what a new file's
prices are compared with before it is stored (market.identity.price_level)."""

from __future__ import annotations

import datetime as dt

import duckdb

from liq_pipeline.warehouse.catalog import table_exists

#: Stored days this close to the partition's day (either side, the day itself excluded) set its price level.
NEIGHBOUR_DAYS = 3
#: Tables and price columns in order of preference: 1,440 candles a day are cheaper to read than trades.
PRICE_SOURCES = (("raw.klines", "close"), ("raw.mark_price_klines", "close"), ("raw.agg_trades", "price"))


def neighbour_price(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date,
                    days: int = NEIGHBOUR_DAYS) -> float | None:
    """Median price of `symbol` over the stored days within `days` of `day` (excluded), from the first table of
    PRICE_SOURCES that has any; None when none has (a first ingest, a new symbol)."""
    lo, hi = day - dt.timedelta(days=days), day + dt.timedelta(days=days)
    for table, column in PRICE_SOURCES:
        if not table_exists(con, table):
            continue
        value = con.execute(f"SELECT median({column}) FROM {table} WHERE symbol = ? AND day BETWEEN ? AND ? AND day <> ?",
                            [symbol, lo, hi, day]).fetchone()[0]
        if value is not None:
            return float(value)
    return None
