"""Readers of the map tables (`model.liquidation_heatmap`, `model.liquidation_levels`,
`model.position_distribution`, `model.flow_snapshots`, `model.flow_steps`) and of the end-of-day mark, for
the heatmap's day: start states, long shares, the book engine's snapshots, the last snapshot per variant."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.model import heatmap as hm
from liq_pipeline.warehouse.catalog import existing_tables, table_exists


def _split_by_variant(rows: dict[str, np.ndarray], variants: tuple[str, ...]) -> dict[str, dict[str, np.ndarray]]:
    """Rows of one query over several variants (ordered by variant), one dict of columns per variant."""
    v = np.asarray(rows["variant"])
    return {name: {k: np.asarray(c)[v == name] for k, c in rows.items() if k != "variant"} for name in variants}


def load_start_states(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, variants: tuple[str, ...],
                      tables: frozenset[str] | None = None) -> dict[str, tuple[hm.LevelState, str]]:
    """End state of D−1 per variant: its last heatmap snapshot, else its D−1 liquidation levels, else empty.
    One query per table for all the variants."""
    tables = existing_tables(con) if tables is None else tables
    prev = day - dt.timedelta(days=1)
    out: dict[str, tuple[hm.LevelState, str]] = {}
    queries = (
        ("model.liquidation_heatmap", "heatmap D-1", """
            WITH last AS (SELECT variant, max(snapshot_time) AS t FROM model.liquidation_heatmap
                          WHERE symbol = $s AND day = $d AND list_contains($v, variant) GROUP BY variant)
            SELECT h.variant, CASE h.side WHEN 'long' THEN 1 ELSE -1 END AS sign, h.bin_id, h.notional_usd
            FROM model.liquidation_heatmap h JOIN last ON h.variant = last.variant AND h.snapshot_time = last.t
            WHERE h.symbol = $s AND h.day = $d ORDER BY h.variant, h.side, h.bin_id"""),
        ("model.liquidation_levels", "levels D-1", """
            SELECT variant, CASE side WHEN 'long' THEN 1 ELSE -1 END AS sign, bin_id, notional_usd
            FROM model.liquidation_levels WHERE symbol = $s AND day = $d AND list_contains($v, variant)
            ORDER BY variant, side, bin_id"""))
    for table, label, sql in queries:
        wanted = [v for v in variants if v not in out]
        if not wanted or table not in tables:
            continue
        rows = con.execute(sql, {"s": symbol, "d": prev, "v": wanted}).fetchnumpy()
        for v, r in _split_by_variant(rows, tuple(wanted)).items():
            if r["sign"].size:
                out[v] = (hm.LevelState.from_rows(r["sign"], r["bin_id"], r["notional_usd"]), label)
    return {v: out.get(v, (hm.LevelState.empty(), "empty")) for v in variants}


def load_long_shares(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, variants: tuple[str, ...],
                     entry_bins: np.ndarray, tables: frozenset[str] | None = None
                     ) -> dict[str, tuple[np.ndarray, str]]:
    """Per-entry-bin long share of each variant from `model.position_distribution` of D−1 (as of D−1's
    end: no lookahead), one query for all the variants."""
    tables = existing_tables(con) if tables is None else tables
    empty = np.zeros(0)
    dist = {v: {"bin_id": empty, "long_usd": empty, "short_usd": empty} for v in variants}
    if "model.position_distribution" in tables:
        rows = con.execute("SELECT variant, bin_id, long_usd, short_usd FROM model.position_distribution "
                           "WHERE symbol = ? AND day = ? AND list_contains(?, variant) ORDER BY variant, bin_id",
                           [symbol, day - dt.timedelta(days=1), list(variants)]).fetchnumpy()
        dist = _split_by_variant(rows, variants)
    return {v: hm.long_share_for_bins(entry_bins, d["bin_id"], d["long_usd"], d["short_usd"])
            for v, d in dist.items()}


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


def flow_snapshot_rows(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, variant: str,
                       tables: frozenset[str] | None = None) -> dict[str, np.ndarray]:
    """A variant's snapshot cells of the day from the book engine (model.flow_snapshots): snapshot_time, sign
    (+1 long, −1 short), bin_id, notional_usd, ordered by time, side, bin. LookupError when flow_book has
    not run."""
    tables = existing_tables(con) if tables is None else tables
    if "model.flow_snapshots" not in tables:
        raise LookupError(f"{symbol} {day}: model.flow_snapshots does not exist; materialize flow_book first")
    rows = con.execute("""SELECT snapshot_time, CASE side WHEN 'long' THEN 1 ELSE -1 END AS sign, bin_id, notional_usd
                          FROM model.flow_snapshots WHERE symbol = ? AND day = ? AND variant = ?
                          ORDER BY snapshot_time, side, bin_id""", [symbol, day, variant]).fetchnumpy()
    if rows["sign"].size == 0 and not con.execute("SELECT count(*) > 0 FROM model.flow_snapshots WHERE symbol = ? "
                                                  "AND day = ?", [symbol, day]).fetchone()[0]:
        # No variant has a snapshot: flow_book has not run (one variant alone may hold an empty book all day).
        raise LookupError(f"{symbol} {day} ({variant}): no book snapshots; materialize flow_book for this "
                          "partition first")
    return rows


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
