"""Writes of the realized liquidations (`raw.realized_liquidations`, `raw.realized_liquidation_bars`; DDL in
schema.py): the forceOrder recorder's append-only batches and a user import's replacement of its own rows.
Both refuse the Parquet storage mode (the tables are filled continuously, not per partition)."""

from __future__ import annotations

import duckdb
import pandas as pd

from liq_pipeline.warehouse import parquet
from liq_pipeline.warehouse.io import registered_frame, transaction
from liq_pipeline.warehouse.schema import ensure_tables

EVENTS_TABLE = "raw.realized_liquidations"
BARS_TABLE = "raw.realized_liquidation_bars"
#: One liquidation event: the stream may deliver it twice (a reconnect), an import may repeat the recorder's.
DEDUP_KEY = ("symbol", "trade_time", "side", "price", "quantity")


def append_liquidations(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> int:
    """Insert the rows of `frame` not already stored (dedupe key DEDUP_KEY), in one transaction.

    Append-only on purpose: the table is day-partitioned but filled continuously, so a partition is
    never replaced; idempotence comes from the dedupe key instead. Returns the number of rows inserted.
    """
    if frame.empty:
        return 0
    parquet.refuse(con, "recording liquidations")
    ensure_tables(con, EVENTS_TABLE)
    on = " AND ".join(f"t.{k} = b.{k}" for k in DEDUP_KEY)
    with registered_frame(con, "_liq_batch", frame), transaction(con):
        before = con.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()[0]
        con.execute(f"""
            INSERT INTO {EVENTS_TABLE} BY NAME
            SELECT * EXCLUDE (rn) FROM (
                SELECT b.*, row_number() OVER (PARTITION BY {', '.join('b.' + k for k in DEDUP_KEY)}
                                               ORDER BY b.event_time) AS rn
                FROM _liq_batch b
                WHERE NOT EXISTS (SELECT 1 FROM {EVENTS_TABLE} t WHERE {on})
            ) WHERE rn = 1""")
        after = con.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()[0]
    return int(after - before)


def replace_source(con: duckdb.DuckDBPyConnection, table: str, source: str, frame: pd.DataFrame) -> tuple[int, int]:
    """Store `frame` in `table` (EVENTS_TABLE or BARS_TABLE), replacing per symbol the rows tagged `source`
    within the frame's own time span of that symbol, in one transaction; returns (rows written, earlier rows
    replaced). Rows of other symbols, other sources or outside the span are never touched; an empty frame is
    refused before anything changes."""
    parquet.refuse(con, "importing liquidations")
    if frame.empty:
        raise ValueError("replace_source: an empty frame replaces nothing")
    ensure_tables(con, table)
    time_col = "trade_time" if table == EVENTS_TABLE else "bar_start"
    spans = frame.groupby("symbol")[time_col].agg(["min", "max"]).reset_index()
    with registered_frame(con, "_liq_import", frame), registered_frame(con, "_liq_spans", spans), transaction(con):
        replaced = con.execute(f"""
            DELETE FROM {table} t USING _liq_spans s
            WHERE t.source = ? AND t.symbol = s.symbol AND t.{time_col} BETWEEN s."min" AND s."max" """,
            [source]).fetchone()[0]
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _liq_import")
    return int(len(frame)), int(replaced or 0)
