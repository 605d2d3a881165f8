"""The warehouse reads behind `liq serve`: what is materialized, heatmap cells over a range of day
partitions, candles, realized liquidations and the flow book's leverage split. Read-only, one query per
input set; times are naive UTC, prices and notionals USD.

A heatmap day partition D holds the snapshots in (D 00:00, D+1 00:00]: the snapshot at midnight is the last
of the day before, so a range of instants reads the partitions from its first day − 1.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.warehouse.grid_sql import bin_id_sql

# A table never materialized is answered as empty: DuckDB says so with a CatalogException, which costs
# nothing when the table exists (a catalog lookup before every query cost 3 ms each on a busy machine).
_MISSING = duckdb.CatalogException


def open_read_only(database: str | Path | None, storage: str = "duckdb", parquet_root: str = "",
                   lock_timeout_s: float = 2.0):
    """A read-only connection: the DuckDB file (a writer's lock is waited for at most `lock_timeout_s`) or, with the
    parquet storage, an in-memory DuckDB with views over the partition files. Raises FileNotFoundError
    when the DuckDB file does not exist."""
    if storage == "parquet":
        from liq_pipeline.warehouse import parquet

        return parquet.connect(parquet_root, read_only=True)
    from liq_pipeline.warehouse.resource import connect

    if not Path(database).exists():
        raise FileNotFoundError(f"warehouse {database} does not exist: run `make demo` or materialize the heatmap")
    return connect(str(database), read_only=True, lock_timeout_s=lock_timeout_s, config={"threads": 2})


@dataclass(frozen=True)
class Materialized:
    """One (symbol, variant) the heatmap covers: its first and last day partitions and newest snapshot."""

    symbol: str
    variant: str
    first_day: dt.date
    last_day: dt.date
    latest_snapshot: dt.datetime


def materialized(con: duckdb.DuckDBPyConnection) -> list[Materialized]:
    """Every (symbol, variant) with heatmap snapshots, from the small model.heatmap_snapshots index."""
    try:
        rows = con.execute("SELECT symbol, variant, min(day), max(day), max(snapshot_time) FROM model.heatmap_snapshots "
                           "GROUP BY ALL ORDER BY symbol, variant").fetchall()
    except _MISSING:
        return []
    return [Materialized(*r) for r in rows]


def snapshot_times(con: duckdb.DuckDBPyConnection, symbol: str, variant: str, start: dt.datetime,
                   end: dt.datetime) -> np.ndarray:
    """Snapshot instants in (start, end], ascending (datetime64[ms])."""
    t = con.execute("SELECT snapshot_time FROM model.heatmap_snapshots WHERE symbol = ? AND variant = ? "
                    "AND day BETWEEN ? AND ? AND snapshot_time > ? AND snapshot_time <= ? ORDER BY snapshot_time",
                    [symbol, variant, start.date() - dt.timedelta(days=1), end.date(), start, end]).fetchnumpy()
    return np.asarray(t["snapshot_time"]).astype("datetime64[ms]")


def heatmap_cells(con: duckdb.DuckDBPyConnection, symbol: str, variant: str, times: np.ndarray,
                  bin_low: int, bin_high: int) -> dict[str, np.ndarray]:
    """Cells of the given snapshot instants inside [bin_low, bin_high]: snapshot_time (datetime64[ms]),
    day, side (+1 long / −1 short), bin_id, notional_usd."""
    if times.size == 0:
        return {"snapshot_time": np.zeros(0, "datetime64[ms]"), "day": np.zeros(0, "datetime64[D]"),
                "side": np.zeros(0, np.int8), "bin_id": np.zeros(0, np.int64), "notional_usd": np.zeros(0)}
    first = times[0].astype(dt.datetime)
    last = times[-1].astype(dt.datetime)
    sql = ("SELECT snapshot_time, day, side = 'long' AS is_long, bin_id, notional_usd FROM model.liquidation_heatmap "
           "WHERE symbol = ? AND variant = ? AND day BETWEEN ? AND ? AND snapshot_time BETWEEN ? AND ? "
           "AND bin_id BETWEEN ? AND ?")
    params = [symbol, variant, first.date() - dt.timedelta(days=1), last.date(), first, last, bin_low, bin_high]
    contiguous = con.execute("SELECT count(*) FROM model.heatmap_snapshots WHERE symbol = ? AND variant = ? AND day "
                             "BETWEEN ? AND ? AND snapshot_time BETWEEN ? AND ?", params[:6]).fetchone()[0] == times.size
    if not contiguous:  # every k-th snapshot: only those
        sql += " AND snapshot_time IN (SELECT unnest(?::TIMESTAMP[]))"
        params.append([t.astype(dt.datetime) for t in times])
    c = con.execute(sql, params).fetchnumpy()
    return {"snapshot_time": np.asarray(c["snapshot_time"]).astype("datetime64[ms]"),
            "day": np.asarray(c["day"]).astype("datetime64[D]"),
            "side": np.where(np.asarray(c["is_long"], bool), 1, -1).astype(np.int8),
            "bin_id": np.asarray(c["bin_id"], np.int64), "notional_usd": np.asarray(c["notional_usd"], float)}


def candles(con: duckdb.DuckDBPyConnection, table: str, symbol: str, start: dt.datetime, end: dt.datetime,
            minutes: int) -> dict[str, np.ndarray]:
    """OHLC candles of `minutes` width from `table` (raw.klines = last price, raw.mark_price_klines = mark)
    over [start, end): open_time (datetime64[ms]), open, high, low, close. Empty when never ingested."""
    empty = {k: np.zeros(0) for k in ("open", "high", "low", "close")} | {"open_time": np.zeros(0, "datetime64[ms]")}
    try:
        c = con.execute(
            f"SELECT time_bucket(INTERVAL (?) MINUTE, open_time) AS t, arg_min(open, open_time) AS open, max(high) AS "
            f"high, min(low) AS low, arg_max(close, open_time) AS close FROM {table} WHERE symbol = ? AND day BETWEEN ? "
            "AND ? AND open_time >= ? AND open_time < ? GROUP BY t ORDER BY t",
            [minutes, symbol, start.date(), end.date(), start, end]).fetchnumpy()
    except _MISSING:
        return empty
    return {"open_time": np.asarray(c["t"]).astype("datetime64[ms]"),
            **{k: np.asarray(c[k], float) for k in ("open", "high", "low", "close")}}


def realized_liquidations(con: duckdb.DuckDBPyConnection | None, symbol: str, start: dt.datetime, end: dt.datetime,
                          limit: int = 5000, empty: bool = False) -> dict[str, np.ndarray]:
    """Recorded or imported liquidations in [start, end) (raw.realized_liquidations), the `limit` largest:
    trade_time, side (+1 a long liquidated / −1 a short), price, notional_usd, and how many there were."""
    out = {"trade_time": np.zeros(0, "datetime64[ms]"), "side": np.zeros(0, np.int8), "price": np.zeros(0),
           "notional_usd": np.zeros(0), "count": 0, "total_usd": 0.0}
    if empty:  # the answer when the table cannot be read (answer_view.py)
        return out
    try:
        c = con.execute(
            "SELECT trade_time, side = 'long' AS is_long, price, notional_usd, count(*) OVER () AS n, "
            "sum(notional_usd) OVER () AS total FROM raw.realized_liquidations WHERE symbol = ? AND day BETWEEN ? AND ? "
            "AND trade_time >= ? AND trade_time < ? ORDER BY notional_usd DESC LIMIT ?",
            [symbol, start.date(), end.date(), start, end, limit]).fetchnumpy()
    except _MISSING:
        return out
    n = int(c["n"][0]) if c["n"].size else 0
    total = float(c["total"][0]) if c["total"].size else 0.0
    out.update(trade_time=np.asarray(c["trade_time"]).astype("datetime64[ms]"),
               side=np.where(np.asarray(c["is_long"], bool), 1, -1).astype(np.int8),
               price=np.asarray(c["price"], float), notional_usd=np.asarray(c["notional_usd"], float),
               count=int(n), total_usd=float(total))
    return out


def realized_days(con: duckdb.DuckDBPyConnection, symbol: str) -> frozenset[dt.date]:
    """The days of raw.realized_liquidations that hold liquidations of `symbol` (empty when never written)."""
    try:
        return frozenset(d for (d,) in con.execute("SELECT DISTINCT day FROM raw.realized_liquidations WHERE symbol = ?",
                                                   [symbol]).fetchall())
    except _MISSING:
        return frozenset()


def flow_book_leverage(con: duckdb.DuckDBPyConnection, symbol: str, variant: str, grid: PriceGrid,
                       first_day: dt.date, last_day: dt.date) -> dict[str, np.ndarray]:
    """A variant's book (model.flow_book) at the end of each day, summed by (day, side, liquidation-price bin, leverage bucket):
    day (datetime64[D]), side (+1/−1), bin_id, lev_bucket, notional_usd. The liquidation price is the book's
    `LP_open + EP·F/(1 − s·MMR)` (model.flow.Book.liq_price); cells without one (LP ≤ 0) are left out."""
    cols = ("day", "side", "bin_id", "lev_bucket", "notional_usd")
    lp = "lp_open + entry_price * funding_paid / (1 - (CASE WHEN side = 'long' THEN 1 ELSE -1 END) * mmr)"
    try:
        c = con.execute(
            f"SELECT day, side = 'long' AS is_long, {bin_id_sql(grid, 'lp')} AS bin_id, lev_bucket, sum(notional_usd) AS n "
            f"FROM (SELECT day, side, lev_bucket, notional_usd, {lp} AS lp FROM model.flow_book "
            "WHERE symbol = ? AND variant = ? AND day BETWEEN ? AND ?) WHERE lp > 0 AND notional_usd > 0 GROUP BY ALL",
            [symbol, variant, first_day, last_day]).fetchnumpy()
    except _MISSING:
        return {k: np.zeros(0) for k in cols}
    return {"day": np.asarray(c["day"]).astype("datetime64[D]"),
            "side": np.where(np.asarray(c["is_long"], bool), 1, -1).astype(np.int8),
            "bin_id": np.asarray(c["bin_id"], np.int64), "lev_bucket": np.asarray(c["lev_bucket"], np.int64),
            "notional_usd": np.asarray(c["n"], float)}
