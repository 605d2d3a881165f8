"""Reader of the real-time signals of a historical instant (mark, OI now and 24 h before, funding) from the raw
tables `raw.mark_price_klines`, `raw.klines`, `raw.open_interest`, `raw.funding_rates` (DDL in schema.py)."""

from __future__ import annotations

import datetime as dt

import duckdb

from liq_pipeline.model.positions import (
    FLAG_MARK_FROM_TRADES,
    FLAG_NO_FUNDING,
    FLAG_NO_MARK,
    FLAG_NO_OI,
    FLAG_NO_OI_24H,
    FLAG_OI_24H_STALE,
    FLAG_OI_STALE,
    MAX_FUNDING_AGE,
    MAX_SAMPLE_AGE,
    PositionSignals,
)
from liq_pipeline.warehouse.catalog import table_exists


def _latest(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> tuple | None:
    rows = con.execute(sql, params).fetchall()
    return rows[0] if rows else None


def signals_from_warehouse(con: duckdb.DuckDBPyConnection, symbol: str, as_of: dt.datetime,
                           *, inclusive: bool = True) -> PositionSignals:
    """The signals of `symbol` as of `as_of` (naive UTC) from the raw tables, never looking ahead.

    Each value is the nearest sample at or before its instant (strictly before when `inclusive` is
    False, which is how a partition's end-of-day as_of D+1 00:00 excludes day D+1):
    - mark price: close of the last `raw.mark_price_klines` candle (any interval) closed by as_of;
      `raw.klines` close with a flag when there are no mark candles;
    - OI now / 24h before: `sum_open_interest_value` (USDT) of `raw.open_interest` (5-minutely or hourly);
      a forward-filled sample (`is_stale`) is used but flagged, which turns the OI-delta step off;
    - funding: `funding_rate_8h` of the last settlement (`funding_time`) at or before as_of, also when
      `inclusive` is False: a rate settled at the as-of instant is published then (issue 13).
    Samples older than MAX_SAMPLE_AGE (funding: MAX_FUNDING_AGE) before their instant count as missing.
    """
    if as_of.tzinfo is not None:
        raise ValueError(f"as_of must be naive UTC, got {as_of!r}")
    op = "<=" if inclusive else "<"
    flags: list[str] = []

    def window(instant: dt.datetime, age: dt.timedelta) -> dict:
        # `day` bounds let DuckDB skip row groups; the time bounds do the real selection.
        return {"symbol": symbol, "t": instant, "t_min": instant - age,
                "d_min": (instant - age).date(), "d_max": instant.date()}

    def mark_from(table: str) -> float | None:
        if not table_exists(con, table):
            return None
        row = _latest(con, f"""
            SELECT close FROM {table}
            WHERE symbol = $symbol AND day BETWEEN $d_min AND $d_max
              AND close_time {op} $t AND close_time >= $t_min
            ORDER BY close_time DESC, open_time DESC LIMIT 1""", window(as_of, MAX_SAMPLE_AGE))
        return None if row is None else float(row[0])

    mark = mark_from("raw.mark_price_klines")
    if mark is None:
        mark = mark_from("raw.klines")
        flags.append(FLAG_NO_MARK if mark is None else FLAG_MARK_FROM_TRADES)

    def oi_at(instant: dt.datetime, strict: bool) -> tuple[float | None, bool]:
        if not table_exists(con, "raw.open_interest"):
            return None, False
        row = _latest(con, f"""
            SELECT sum_open_interest_value, is_stale FROM raw.open_interest
            WHERE symbol = $symbol AND day BETWEEN $d_min AND $d_max AND sum_open_interest_value IS NOT NULL
              AND create_time {'<' if strict else '<='} $t AND create_time >= $t_min
            ORDER BY create_time DESC LIMIT 1""", window(instant, MAX_SAMPLE_AGE))
        return (None, False) if row is None else (float(row[0]), bool(row[1]))

    oi_now, stale_now = oi_at(as_of, strict=not inclusive)
    oi_then, stale_then = oi_at(as_of - dt.timedelta(hours=24), strict=False)
    flags += [f for f, on in ((FLAG_NO_OI, oi_now is None), (FLAG_OI_STALE, stale_now),
                              (FLAG_NO_OI_24H, oi_then is None), (FLAG_OI_24H_STALE, stale_then)) if on]

    funding = None
    if table_exists(con, "raw.funding_rates"):
        row = _latest(con, """
            SELECT funding_rate_8h FROM raw.funding_rates
            WHERE symbol = $symbol AND day BETWEEN $d_min AND $d_max
              AND funding_time <= $t AND funding_time >= $t_min
            ORDER BY funding_time DESC LIMIT 1""", window(as_of, MAX_FUNDING_AGE))
        funding = None if row is None else float(row[0])
    if funding is None:
        flags.append(FLAG_NO_FUNDING)
    return PositionSignals(as_of, mark, oi_now, oi_then, funding, tuple(flags))
