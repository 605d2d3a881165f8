"""Writes of the heatmap tables (`model.liquidation_heatmap` with its index `model.heatmap_snapshots`, and
`model.liquidation_zones`): one transaction per partition, plus the copy a failed run puts back."""

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd

from liq_pipeline.warehouse.io import (
    as_arrow,
    exact_usd_sum,
    registered_frame,
    replace_partition,
    replace_partitions,
)
from liq_pipeline.warehouse.schema import ensure_tables

#: model.heatmap_snapshots rows of the day being written (one per variant and snapshot), from its heatmap rows.
SNAPSHOT_INDEX_SQL = """
    SELECT symbol, day, variant, CAST(snapshot_time AS TIMESTAMP) AS snapshot_time, count(*) AS levels,
           {long} AS long_usd, {short} AS short_usd
    FROM heatmap_rows GROUP BY ALL""".format(
    long=exact_usd_sum("CASE WHEN side = 'long' THEN notional_usd ELSE 0 END"),
    short=exact_usd_sum("CASE WHEN side = 'short' THEN notional_usd ELSE 0 END"))


def restore_heatmap_day(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, path: Path) -> int:
    """Put back a partition's rows kept by `keep_previous_rows` (and rebuild its snapshot index with them)."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW heatmap_rows AS SELECT * FROM read_parquet('{path}')")
    try:
        return _write_heatmap_rows(con, symbol, day)
    finally:
        con.execute("DROP VIEW IF EXISTS heatmap_rows")


def _write_heatmap_rows(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> int:
    n, _ = replace_partitions(con, symbol, day, [
        ("model.liquidation_heatmap", "SELECT symbol, day, variant, CAST(snapshot_time AS TIMESTAMP) AS "
         "snapshot_time, side, bin_id, price, notional_usd FROM heatmap_rows", None),
        ("model.heatmap_snapshots", SNAPSHOT_INDEX_SQL, None)])
    return n


def write_heatmap_rows(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, rows: pd.DataFrame) -> int:
    """Replace the day's model.liquidation_heatmap partition and its model.heatmap_snapshots index together
    (one transaction) with `rows` (the table's columns); returns the heatmap rows stored."""
    with registered_frame(con, "heatmap_rows", as_arrow(rows)):
        return _write_heatmap_rows(con, symbol, day)


def copy_heatmap_partition(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, path: Path) -> None:
    """Copy a partition's current model.liquidation_heatmap rows to a Parquet file (to put back on failure)."""
    ensure_tables(con, "model.liquidation_heatmap")
    con.execute(f"COPY (SELECT * FROM model.liquidation_heatmap WHERE symbol = ? AND day = ?) TO '{path}' "
                "(FORMAT parquet)", [symbol, day])


def write_zones(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, rows: pd.DataFrame) -> int:
    """Replace the day's model.liquidation_zones partition with `rows` (its columns); returns the rows stored."""
    con.register("zone_rows", rows)
    return replace_partition(con, "model.liquidation_zones", symbol, day,
                             "SELECT symbol, day, variant, CAST(as_of AS TIMESTAMP) AS as_of, side, "
                             "zone_rank, centroid_price, price_low, price_high, notional_usd, "
                             "distance_pct, share_of_side FROM zone_rows")
