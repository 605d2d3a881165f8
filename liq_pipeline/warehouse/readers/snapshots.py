"""Readers behind `liq heatmap` and `liq zones`: which stored snapshot answers an instant
(`model.heatmap_snapshots`, else `model.liquidation_heatmap`; the latest day of `model.liquidation_zones`), a
snapshot's levels and cells, the mark closes (`raw.mark_price_klines`, else `raw.klines`) and the OI reference
(`raw.open_interest`) of a picture; DDL in schema.py. Times are naive UTC, prices and notionals USD.

Imports nothing beyond the DuckDB engine and config (warehouse/readonly.py), so `liq heatmap` starts fast.
"""

from __future__ import annotations

import datetime as dt

from liq_pipeline.warehouse.catalog import table_exists
from liq_pipeline.warehouse.readonly import AnswerError, duckdb_engine, materialize_hint

#: The price tables a mark is read from, in order of preference: the mark price, else the last price.
MARK_TABLES = ("raw.mark_price_klines", "raw.klines")


def day_of(at: dt.datetime) -> dt.date:
    """The day whose snapshots hold `at` (midnight is the last snapshot of the day before)."""
    return (at - dt.timedelta(milliseconds=1)).date() if at.time() == dt.time() else at.date()


def latest_zones_day(con, symbol: str, variant: str) -> dt.date | None:
    """The last day of model.liquidation_zones of (symbol, variant); None when none (the table must exist)."""
    return con.execute("SELECT max(day) FROM model.liquidation_zones WHERE symbol = ? AND variant = ?",
                       [symbol, variant]).fetchone()[0]


def _from_snapshot_index(con, symbol: str, variant: str, at: dt.datetime | None
                         ) -> tuple[dt.datetime, dt.date] | None:
    """The snapshot for `at` from model.heatmap_snapshots (one row per snapshot, written with the heatmap);
    None when the index does not cover it (a warehouse materialized before the index existed)."""
    try:
        if at is None:
            row = con.execute("SELECT max(snapshot_time), arg_max(day, snapshot_time) FROM model.heatmap_snapshots "
                              "WHERE symbol = ? AND variant = ?", [symbol, variant]).fetchone()
            if row[0] is None:
                return None
            try:  # zones of a later day than the index knows: days written before the index existed
                zones_day = latest_zones_day(con, symbol, variant)
            except duckdb_engine().CatalogException:
                zones_day = None
            return None if zones_day is not None and zones_day > row[1] else (row[0], row[1])
        day = day_of(at)
        row = con.execute(
            """SELECT max(snapshot_time) FILTER (WHERE snapshot_time <= $at),
                      arg_max(day, snapshot_time) FILTER (WHERE snapshot_time <= $at), bool_or(day = $d)
               FROM model.heatmap_snapshots WHERE symbol = $s AND variant = $v AND day BETWEEN $d - 1 AND $d""",
            {"s": symbol, "v": variant, "d": day, "at": at}).fetchone()
    except duckdb_engine().CatalogException:
        return None
    return (row[0], row[1]) if row[2] and row[0] is not None else None


def resolve_snapshot(con, symbol: str, variant: str, at: dt.datetime | None) -> tuple[dt.datetime, dt.date]:
    """The snapshot shown for `at` (the latest at or before it; default the latest of all) and its day.
    AnswerError (with the command to run) when nothing is materialized for it."""
    found = _from_snapshot_index(con, symbol, variant, at)
    if found is not None:
        return found
    if not table_exists(con, "model.liquidation_heatmap"):
        raise AnswerError(f"{symbol}: no heatmap materialized yet: {materialize_hint(symbol, at.date() if at else None)}")
    if at is None:
        # The small zones table gives a lower bound on the latest day, so DuckDB's min/max row-group
        # statistics skip the older snapshots instead of scanning the whole history.
        since = None
        if table_exists(con, "model.liquidation_zones"):
            since = latest_zones_day(con, symbol, variant)
        row = con.execute("SELECT max(snapshot_time), arg_max(day, snapshot_time) FROM model.liquidation_heatmap "
                          "WHERE symbol = ? AND variant = ? AND day >= ?",
                          [symbol, variant, since or dt.date.min]).fetchone()
        if row[0] is None:
            raise AnswerError(f"{symbol} ({variant}): not materialized: {materialize_hint(symbol, None)}")
        return row[0], row[1]
    day = day_of(at)
    # One scan of two days (row-group statistics skip the rest): the snapshot and whether `day` exists.
    row = con.execute(
        """SELECT max(snapshot_time) FILTER (WHERE snapshot_time <= $at),
                  arg_max(day, snapshot_time) FILTER (WHERE snapshot_time <= $at),
                  coalesce(bool_or(day = $d), false)
           FROM model.liquidation_heatmap
           WHERE symbol = $s AND variant = $v AND day BETWEEN $d - 1 AND $d""",
        {"s": symbol, "v": variant, "d": day, "at": at}).fetchone()
    if not row[2] or row[0] is None:
        raise AnswerError(f"{symbol} {day} ({variant}): not materialized: {materialize_hint(symbol, day)}")
    return row[0], row[1]


def mark_at(con, symbol: str, at: dt.datetime) -> tuple[float | None, str]:
    """Last mark close at or before `at` (last-price close if no mark candle), and its table ('' when none)."""
    for table in MARK_TABLES:
        try:
            v = con.execute(f"SELECT arg_max(close, open_time) FROM {table} WHERE symbol = ? AND day BETWEEN ? AND ? "
                            "AND open_time < ?", [symbol, at.date() - dt.timedelta(days=1), at.date(), at]).fetchone()[0]
        except duckdb_engine().CatalogException:  # table never materialized
            continue
        if v is not None:
            return float(v), table
    return None, ""


def snapshot_levels(con, symbol: str, variant: str, snapshot: dt.datetime, day: dt.date) -> list[tuple]:
    """(side, bin_id, price, notional_usd) rows of one snapshot, by price."""
    return con.execute("SELECT side, bin_id, price, notional_usd FROM model.liquidation_heatmap WHERE symbol = ? "
                       "AND day = ? AND variant = ? AND snapshot_time = ? ORDER BY price",
                       [symbol, day, variant, snapshot]).fetchall()


def cells_until(con, symbol: str, day: dt.date, variant: str, until: dt.datetime) -> dict:
    """Columns snapshot_time, side, bin_id, notional_usd (numpy) of the day partition's snapshots up to `until`."""
    return con.execute("SELECT snapshot_time, side, bin_id, notional_usd FROM model.liquidation_heatmap "
                       "WHERE symbol = ? AND day = ? AND variant = ? AND snapshot_time <= ?",
                       [symbol, day, variant, until]).fetchnumpy()


def mark_closes_until(con, symbol: str, day: dt.date, until: dt.datetime) -> dict | None:
    """Columns open_time, close (numpy) of the day's candles opening before `until`, from the first table of
    MARK_TABLES that has any; None when neither has."""
    for table in MARK_TABLES:
        if table_exists(con, table):
            m = con.execute(f"SELECT open_time, close FROM {table} WHERE symbol = ? AND day = ? AND open_time < ? "
                            "ORDER BY open_time", [symbol, day, until]).fetchnumpy()
            if m["close"].size:
                return m
    return None


def oi_reference_usd(con, symbol: str, day: dt.date, until: dt.datetime) -> float | None:
    """The last non-stale OI value (USD) of the day before and the day up to `until` (None when none)."""
    if not table_exists(con, "raw.open_interest"):
        return None
    return con.execute("SELECT arg_max(sum_open_interest_value, create_time) FROM raw.open_interest WHERE "
                       "symbol = ? AND day BETWEEN ? AND ? AND NOT is_stale AND create_time <= ?",
                       [symbol, day - dt.timedelta(days=1), day, until]).fetchone()[0]
