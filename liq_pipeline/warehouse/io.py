"""The atomic, idempotent partition write every asset uses, and small read helpers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb

from liq_pipeline.warehouse import parquet
from liq_pipeline.warehouse.catalog import strictly_increasing, table_exists  # noqa: F401  (re-exported)
from liq_pipeline.warehouse.schema import TABLES, ensure_tables


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT around the block; ROLLBACK and re-raise if it fails, so nothing half-written stays."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            # A COMMIT that failed (disk full, permission denied) has already ended the transaction: DuckDB's
            # "cannot rollback - no transaction is active" would hide the real cause, which is re-raised.
            pass
        raise


class WarehouseWriteError(OSError):
    """A partition write the storage refused (no space left, permission denied, file too large, I/O error).
    The message starts with that cause; the partition keeps its previous rows."""


def write_failure_cause(error: BaseException) -> str:
    """The underlying cause of a failed write in one line, without DuckDB's wrapper prefixes."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    for prefix in ("TransactionContext Error: ", "Failed to commit: ", "IO Error: ", "FATAL Error: "):
        text = text.removeprefix(prefix)
    return text


def _is_storage_error(error: BaseException) -> bool:
    if isinstance(error, (OSError, duckdb.IOException, duckdb.FatalException)):
        return True
    return isinstance(error, duckdb.TransactionException) and "Failed to commit" in str(error)


@contextmanager
def registered_frame(con: duckdb.DuckDBPyConnection, name: str, frame) -> Iterator[str]:
    """`frame` visible to SQL as `name` inside the block. DuckDB 2 refuses register/unregister while a
    result is half-read; a finished statement before each clears it."""
    con.execute("SELECT 1").fetchall()
    con.register(name, frame)
    try:
        yield name
    finally:
        con.execute("SELECT 1").fetchall()
        con.unregister(name)


def as_arrow(frame):
    """A pandas frame as a pyarrow Table (the same values: NaN is NULL for DuckDB either way), which DuckDB
    scans at about half the CPU of the frame (400 k heatmap rows: 0.40 -> 0.26 s stored, issue 29); the frame
    itself when pyarrow cannot convert a column (mixed Python objects), or when it is not a pandas frame."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame) or not len(frame.columns):
        return frame
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return frame


def write_frame(con: duckdb.DuckDBPyConnection, table: str, symbol: str, day: dt.date, frame,
                arrow: bool = False) -> int:
    """`replace_partition` of (symbol, day) from an in-memory frame whose columns are named as the table's
    (`arrow`: scanned as a pyarrow Table, `as_arrow`: for the large frames of numbers and plain strings)."""
    with registered_frame(con, "_liq_frame", as_arrow(frame) if arrow else frame):
        return replace_partition(con, table, symbol, day, "SELECT * FROM _liq_frame")


def replace_partition(
    con: duckdb.DuckDBPyConnection,
    table: str,
    symbol: str,
    day: dt.date,
    select_sql: str,
    params: Sequence[Any] | dict | None = None,
    unique: tuple[str, str] | None = None,
) -> int:
    """Replace the rows of (symbol, day) in `table` with the rows of `select_sql`, in one transaction.

    Columns are matched by name (`INSERT ... BY NAME`), so the select may list them in any order. If the
    insert fails the transaction rolls back and the partition's previous rows survive. Re-running with the
    same input gives the same rows. Returns the number of rows now stored for the partition.

    `unique` = (key column, fallback select): when the rows of `select_sql` are not strictly increasing in
    the key (a duplicate, or out of order), they are replaced, in the same transaction, by the rows of the
    fallback select (which deduplicates and sorts). A clean file thus skips the costly deduplication.
    """
    if table not in TABLES:
        raise KeyError(f"unknown warehouse table {table!r}")
    root = parquet.root_of(con)
    if root is not None:  # LIQ_STORAGE=parquet: one file per partition, written then renamed
        return parquet.write_partition(con, root, table, symbol, day, select_sql, params, unique=unique)
    ensure_tables(con, table)
    try:
        with transaction(con):
            con.execute(f"DELETE FROM {table} WHERE symbol = ? AND day = ?", [symbol, day])
            con.execute(f"INSERT INTO {table} BY NAME {select_sql}", params or [])
            if unique is not None and not strictly_increasing(con, table, unique[0], symbol, day):
                con.execute(f"DELETE FROM {table} WHERE symbol = ? AND day = ?", [symbol, day])
                con.execute(f"INSERT INTO {table} BY NAME {unique[1]}", params or [])
    except Exception as e:
        if not _is_storage_error(e):
            raise
        raise WarehouseWriteError(f"{write_failure_cause(e)} (writing {table} {symbol} {day}; rolled back, the "
                                  "partition keeps its previous rows)") from e
    return count_partition(con, table, symbol, day)


def empty_partition(con: duckdb.DuckDBPyConnection, table: str, symbol: str, day: dt.date) -> int:
    """`replace_partition` of (symbol, day) with no rows: the partition is stored empty (a file never
    published). Returns 0, the rows now stored."""
    return replace_partition(con, table, symbol, day, f"SELECT * FROM {table} WHERE false")


def replace_partitions(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date,
                       writes: Sequence[tuple[str, str, Sequence[Any] | dict | None]]) -> list[int]:
    """`replace_partition` of several tables' (symbol, day) partitions, all in one transaction: a reader sees
    all the new partitions or all the old ones. `writes` = (table, select_sql, params) in write order.

    In the parquet storage mode each file is replaced atomically in that order (there is no transaction
    across files), so list last a table that only indexes the others. Returns the rows stored per table."""
    for table, _, _ in writes:
        if table not in TABLES:
            raise KeyError(f"unknown warehouse table {table!r}")
    root = parquet.root_of(con)
    if root is not None:
        return [parquet.write_partition(con, root, table, symbol, day, sql, params) for table, sql, params in writes]
    ensure_tables(con, *(table for table, _, _ in writes))
    with transaction(con):
        for table, sql, params in writes:
            con.execute(f"DELETE FROM {table} WHERE symbol = ? AND day = ?", [symbol, day])
            con.execute(f"INSERT INTO {table} BY NAME {sql}", params or [])
    return [count_partition(con, table, symbol, day) for table, _, _ in writes]


def count_partition(con: duckdb.DuckDBPyConnection, table: str, symbol: str, day: dt.date) -> int:
    ensure_tables(con, table)
    return con.execute(f"SELECT count(*) FROM {table} WHERE symbol = ? AND day = ?", [symbol, day]).fetchall()[0][0]


def replace_ingest_log(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, table_name: str,
                       file_name: str | None, sha256: str | None, status: str, rows: int) -> None:
    """The one raw.ingest_log row of (symbol, day, table_name): which file fed the partition, and how."""
    values = [symbol, day, table_name, file_name, sha256, status, rows]
    select = ("SELECT ?::VARCHAR AS symbol, ?::DATE AS day, ?::VARCHAR AS table_name, ?::VARCHAR AS file_name, "
              "?::VARCHAR AS sha256, ?::VARCHAR AS status, ?::BIGINT AS rows, now()::TIMESTAMP AS ingested_at")
    root = parquet.root_of(con)
    if root is not None:
        parquet.write_partition(con, root, "raw.ingest_log", symbol, day, select, values,
                                part=table_name.replace(".", "_"))
        return
    ensure_tables(con, "raw.ingest_log")
    with transaction(con):
        con.execute("DELETE FROM raw.ingest_log WHERE symbol = ? AND day = ? AND table_name = ?",
                    [symbol, day, table_name])
        con.execute(f"INSERT INTO raw.ingest_log BY NAME {select}", values)


def exact_usd_sum(expr: str) -> str:
    """SQL sum of a USD amount that does not depend on row order: each amount rounded to a micro-dollar and
    added as an integer. A DOUBLE sum() adds in scan order, which a parallel scan changes from run to run (a
    busy machine made Parquet and DuckDB backfills differ in the last bits, carried through every later step)."""
    return f"CAST(sum(CAST(round(({expr}) * 1e6) AS HUGEINT)) AS DOUBLE) / 1e6"
