"""Writes of the answer files (docs/answer-files.md) from the warehouse: a heatmap partition's snapshots with
the mark at each, and a zones partition's rows, read back from the tables just written, so a file says
exactly what the tables say. The format is warehouse/answer_files.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np

from liq_pipeline.model import variants as variant_registry
from liq_pipeline.model.grid import grid_for
from liq_pipeline.warehouse import answer_files as af
from liq_pipeline.warehouse import heatmap_view as wv
from liq_pipeline.warehouse.readers.snapshots import MARK_TABLES
from liq_pipeline.warehouse.readonly import ZONE_COLS


def folder_of(resource) -> Path | None:
    """The answers folder of a warehouse resource (WarehouseResource or a plain DuckDBResource)."""
    return af.folder_for(resource.database, getattr(resource, "storage", "duckdb"), getattr(resource, "parquet_root", ""))


def _marks(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> dict[dt.datetime, tuple[float, str]]:
    """The mark at each snapshot instant of the partition, as `liq heatmap` reads it (readers/snapshots.mark_at:
    the last close opening before the instant, on its day or the day before; the mark price's table first)."""
    out: dict[dt.datetime, tuple[float, str]] = {}
    for table in MARK_TABLES:
        try:
            rows = con.execute(
                f"""SELECT s.t, (SELECT arg_max(close, open_time) FROM {table} k WHERE k.symbol = $s
                                 AND k.day BETWEEN CAST(s.t AS DATE) - 1 AND CAST(s.t AS DATE) AND k.open_time < s.t)
                    FROM (SELECT DISTINCT snapshot_time AS t FROM model.liquidation_heatmap
                          WHERE symbol = $s AND day = $d) s""", {"s": symbol, "d": day}).fetchall()
        except duckdb.CatalogException:  # table never materialized
            continue
        for t, close in rows:
            if close is not None and t not in out:
                out[t] = (float(close), table)
    return out


def heatmap_answer(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> bytes | None:
    """The .heatmap file of (symbol, day) from model.liquidation_heatmap; None when the partition is empty.
    ValueError when a bin has two prices in the partition (the price table holds one per bin)."""
    names = [r[0] for r in con.execute("SELECT DISTINCT variant FROM model.liquidation_heatmap WHERE symbol = ? "
                                       "AND day = ? ORDER BY variant", [symbol, day]).fetchall()]
    if not names:
        return None
    marks = _marks(con, symbol, day)
    snaps: dict[str, list[af.Snapshot]] = {}
    all_bins, all_prices = [], []
    for variant in names:  # one query per variant: numbers only (strings per row cost more than the sort)
        c = con.execute("SELECT snapshot_time, side = 'long' AS is_long, bin_id, price, notional_usd "
                        "FROM model.liquidation_heatmap WHERE symbol = ? AND day = ? AND variant = ? "
                        "ORDER BY snapshot_time, is_long DESC, price, bin_id", [symbol, day, variant]).fetchnumpy()
        t = np.asarray(c["snapshot_time"]).astype("datetime64[ms]")
        is_long = np.asarray(c["is_long"], bool)
        bins = np.asarray(c["bin_id"]).astype("<i4")
        usd = np.asarray(c["notional_usd"]).astype("<f8")
        all_bins.append(bins)
        all_prices.append(np.asarray(c["price"], "<f8"))
        starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
        ends = np.r_[starts[1:], t.size]
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            when = t[a].astype(dt.datetime)
            n_long = int(is_long[a:b].sum())
            mark, table = marks.get(when, (None, ""))
            snaps.setdefault(variant, []).append(af.Snapshot(
                when, n_long, b - a - n_long, bins[a:b].tobytes() + usd[a:b].tobytes(), mark, table))
    bins_all, prices_all = np.concatenate(all_bins), np.concatenate(all_prices)
    table_bins, where = np.unique(bins_all, return_inverse=True)
    table_prices = np.zeros(table_bins.size, "<f8")
    table_prices[where] = prices_all
    if np.any(table_prices[where] != prices_all):
        raise ValueError(f"{symbol} {day}: a price bin with two prices in model.liquidation_heatmap")
    return af.encode_heatmap(symbol, day, table_bins.astype("<i4").tobytes() + table_prices.tobytes(), snaps,
                             _candles(con, symbol, day), _leverage(con, symbol, day, names))


def _leverage(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, names: list[str]) -> dict[str, bytes]:
    """The leverage filter's book of the day (heatmap_view.flow_book_leverage) for each variant in `names` with the
    learned leverage mix (the buckets the filter offers), packed (answer_files.pack_leverage) in a fixed order
    (side, bin, bucket); a variant whose book is empty that day gets an empty block."""
    out = {}
    grid = grid_for(symbol)
    for variant in names:
        if variant_registry.BY_NAME[variant].leverage_mix != "flow":
            continue
        b = wv.flow_book_leverage(con, symbol, variant, grid, day, day)
        order = np.lexsort((b["lev_bucket"], b["bin_id"], b["side"]))
        out[variant] = (b["bin_id"][order].astype("<i4").tobytes() + b["lev_bucket"][order].astype("<i4").tobytes()
                        + b["side"][order].astype("<i4").tobytes() + b["notional_usd"][order].astype("<f8").tobytes())
    return out


def _candles(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> dict[str, bytes]:
    """The day's candles of each MARK_TABLES table that has any, packed (answer_files.pack_candles)."""
    out = {}
    for table in MARK_TABLES:
        try:
            c = con.execute(f"SELECT epoch_ms(open_time) AS t, open, high, low, close FROM {table} WHERE symbol = ? "
                            "AND day = ? ORDER BY open_time", [symbol, day]).fetchnumpy()
        except duckdb.CatalogException:
            continue
        if c["t"].size:
            out[table] = np.asarray(c["t"], "<i8").tobytes() + b"".join(
                np.asarray(c[k], "<f8").tobytes() for k in ("open", "high", "low", "close"))
    return out


def write_heatmap_answer(con: duckdb.DuckDBPyConnection, folder: Path | None, symbol: str, day: dt.date) -> Path | None:
    """Write (or remove, when the partition is empty) the partition's .heatmap answer file; its path."""
    if folder is None:
        return None
    path = af.heatmap_path(folder, symbol, day)
    data = heatmap_answer(con, symbol, day)
    if data is None:
        path.unlink(missing_ok=True)
        return None
    af.write_atomically(path, data)
    return path


def write_zones_answer(con: duckdb.DuckDBPyConnection, folder: Path | None, symbol: str, day: dt.date) -> Path | None:
    """Write (or remove, when the partition is empty) the partition's .zones.json answer file; its path."""
    if folder is None:
        return None
    path = af.zones_path(folder, symbol, day)
    rows = con.execute(f"SELECT variant, {ZONE_COLS} FROM model.liquidation_zones WHERE symbol = ? AND day = ? "
                       "ORDER BY variant, side, zone_rank", [symbol, day]).fetchall()
    if not rows:
        path.unlink(missing_ok=True)
        return None
    by_variant: dict[str, list[tuple]] = {}
    for variant, *row in rows:
        by_variant.setdefault(variant, []).append(tuple(row))
    af.write_atomically(path, af.encode_zones(symbol, day, by_variant))
    return path


def materialized_partitions(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, dt.date]]:
    """(symbol, day) partitions of model.liquidation_heatmap or model.liquidation_zones ([] when missing)."""
    if table not in ("model.liquidation_heatmap", "model.liquidation_zones"):
        raise ValueError(f"no answer files for {table}")
    try:
        return con.execute(f"SELECT DISTINCT symbol, day FROM {table} ORDER BY symbol, day").fetchall()
    except duckdb.CatalogException:
        return []


def write_all_answers(con: duckdb.DuckDBPyConnection, folder: Path, progress=None) -> int:
    """Write the answer files of every materialized heatmap and zones partition (for a warehouse materialized
    before the files existed); returns the files written."""
    written = 0
    for table, write in (("model.liquidation_heatmap", write_heatmap_answer),
                         ("model.liquidation_zones", write_zones_answer)):
        for symbol, day in materialized_partitions(con, table):
            if write(con, folder, symbol, day) is not None:
                written += 1
                if progress:
                    progress(f"{symbol} {day} {table}")
    return written
