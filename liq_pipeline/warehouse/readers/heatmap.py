"""Readers of the map tables (`model.liquidation_heatmap`, `model.liquidation_levels`,
`model.position_distribution`, `model.flow_snapshots`, `model.flow_steps`) and of the end-of-day mark, for
the heatmap's day: start states, long shares, the book engine's snapshots, the last snapshot per variant."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.warehouse.catalog import existing_tables, table_exists


def end_of_day_mark(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> tuple[float, str]:
    """Last mark close of the day (last-price close if no mark candle), and which table it came from."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    for table in ("raw.mark_price_klines", "raw.klines"):
        if table_exists(con, table):
            row = con.execute(f"SELECT arg_max(close, open_time) FROM {table} WHERE symbol = ? AND day = ? "
                              "AND open_time < ?", [symbol, day, end]).fetchone()
            if row and row[0] is not None:
                return float(row[0]), table
    raise LookupError(f"{symbol} {day}: no mark-price or last-price klines to measure zone distances from")


def hourly_mark_closes(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, days: int = 7) -> np.ndarray:
    """The last mark close of each hour of the `days` days ending with `day`, in time order (last-price closes
    if no mark candle): the series the zones' realised volatility is measured on (no look-ahead). Empty when
    neither table has those days."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    first = day - dt.timedelta(days=days - 1)
    for table in ("raw.mark_price_klines", "raw.klines"):
        if table_exists(con, table):
            got = con.execute(f"""SELECT arg_max(close, open_time) FROM {table} WHERE symbol = ? AND day BETWEEN ? AND ?
                                  AND open_time < ? GROUP BY date_trunc('hour', open_time)
                                  ORDER BY date_trunc('hour', open_time)""", [symbol, first, day, end]).fetchall()
            if got:
                return np.array([r[0] for r in got], dtype=np.float64)
    return np.zeros(0)


def flow_snapshot_rows(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, variant: str,
                       tables: frozenset[str] | None = None) -> dict[str, np.ndarray]:
    """A variant's snapshot cells of the day from the book engine (model.flow_snapshots): snapshot_time, sign
    (+1 long, −1 short), bin_id, notional_usd, ordered by time, side, bin. LookupError when flow_book has
    not run."""
    tables = existing_tables(con) if tables is None else tables
    if "model.flow_snapshots" not in tables:
        raise LookupError(f"{symbol} {day}: model.flow_snapshots does not exist; materialize flow_book first")
    # No ORDER BY: flow_book writes the day in this order and DuckDB keeps the insertion order of a scan, so
    # the rows usually arrive sorted; `_in_snapshot_order` checks that in one pass and sorts only when not
    # (the sort was 40 % of the query's CPU: the 30-day heatmap of make bench, issue 29).
    rows = _in_snapshot_order(con.execute(
        """SELECT snapshot_time, CASE side WHEN 'long' THEN 1 ELSE -1 END AS sign, bin_id, notional_usd
           FROM model.flow_snapshots WHERE symbol = ? AND day = ? AND variant = ?""",
        [symbol, day, variant]).fetchnumpy())
    if rows["sign"].size == 0 and not con.execute("SELECT count(*) > 0 FROM model.flow_snapshots WHERE symbol = ? "
                                                  "AND day = ?", [symbol, day]).fetchone()[0]:
        # No variant has a snapshot: flow_book has not run (one variant alone may hold an empty book all day).
        raise LookupError(f"{symbol} {day} ({variant}): no book snapshots; materialize flow_book for this "
                          "partition first")
    return rows


def _in_snapshot_order(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`rows` ordered by (snapshot_time, side with long first, bin_id), as ORDER BY snapshot_time, side,
    bin_id gives: unchanged when already in that order (the keys of a day are distinct, so the order is
    unique), else sorted."""
    t = np.asarray(rows["snapshot_time"]).astype("datetime64[ms]").astype(np.int64)
    sign, b = np.asarray(rows["sign"], np.int64), np.asarray(rows["bin_id"], np.int64)
    dt_, ds, db = t[1:] - t[:-1], sign[:-1] - sign[1:], b[1:] - b[:-1]  # long (+1) sorts before short (−1)
    ascending = (dt_ > 0) | ((dt_ == 0) & ((ds > 0) | ((ds == 0) & (db > 0))))
    if ascending.all():
        return rows
    order = np.lexsort((b, -sign, t))
    return {k: np.asarray(v)[order] for k, v in rows.items()}


def flow_consumed_by_variant(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date,
                             tables: frozenset[str] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """`flow_consumed_rows` of every variant of the day in one query: variant -> step_end, side, usd."""
    tables = existing_tables(con) if tables is None else tables
    if "model.flow_steps" not in tables:
        return {}
    rows = con.execute("""SELECT variant, step_end, side, sum(consumed_usd) AS usd FROM model.flow_steps
                          WHERE symbol = ? AND day = ? GROUP BY ALL""", [symbol, day]).fetchnumpy()
    variant = np.asarray(rows.pop("variant"))
    return {str(v): {k: np.asarray(x)[variant == v] for k, x in rows.items()} for v in np.unique(variant)}


def flow_consumed_rows(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, variant: str,
                       tables: frozenset[str] | None = None) -> dict[str, np.ndarray]:
    """Notional the book engine's mark path consumed per step end and side (model.flow_steps): step_end,
    side ('long'/'short'), usd; empty columns when the table does not exist."""
    tables = existing_tables(con) if tables is None else tables
    if "model.flow_steps" not in tables:
        return {"step_end": np.zeros(0, "datetime64[ms]"), "side": np.zeros(0, object), "usd": np.zeros(0)}
    return con.execute("""SELECT step_end, side, sum(consumed_usd) AS usd FROM model.flow_steps
                          WHERE symbol = ? AND day = ? AND variant = ? GROUP BY ALL""",
                       [symbol, day, variant]).fetchnumpy()


def last_snapshots(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> pd.DataFrame:
    """The last heatmap snapshot of the day per variant (variant, snapshot_time, side, bin_id, notional_usd);
    LookupError when the day has none."""
    snap = con.execute(
        """SELECT variant, snapshot_time, side, bin_id, notional_usd FROM model.liquidation_heatmap h
           WHERE symbol = ? AND day = ? AND snapshot_time = (SELECT max(snapshot_time)
               FROM model.liquidation_heatmap WHERE symbol = h.symbol AND day = h.day AND variant = h.variant)
        """, [symbol, day]).df() if table_exists(con, "model.liquidation_heatmap") else pd.DataFrame()
    if snap.empty:
        raise LookupError(f"{symbol} {day}: model.liquidation_heatmap has no snapshot; "
                          "materialize liquidation_heatmap for this partition first")
    return snap
