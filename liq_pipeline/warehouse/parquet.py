"""The `parquet` storage mode: every partition of every table is one Parquet file in a hive layout,

    <root>/<schema>/<table>/symbol=<SYMBOL>/day=<YYYY-MM-DD>/<part>.parquet

and the tables readers see are DuckDB views over those files, typed by the DDL of warehouse/schema.py.
A process opens an in-memory DuckDB with the views (`connect`), so any number of processes read and write
partitions at once: no single-writer lock. A write goes to a temporary file in the partition's folder and
is renamed over the old one (atomic and idempotent on a local file system; on an object store, via DuckDB
httpfs, one PUT of the final key, which is atomic per object).

The connection carries its root in the DuckDB variable `liq_parquet_root`; `is_parquet(con)` tells the
write helpers of warehouse/io.py which way to write.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from pathlib import Path

import duckdb

from liq_pipeline.warehouse.catalog import ROOT_VARIABLE, root_of, strictly_increasing  # noqa: F401  (root_of re-exported)
from liq_pipeline.warehouse.schema import TABLES

PARTITION_COLUMNS = ("symbol", "day")


def is_remote(root: str) -> bool:
    return "://" in root


def columns(table: str) -> list[tuple[str, str]]:
    """(name, type) of every column of `table`, from its DDL."""
    out = []
    for line in TABLES[table].strip().splitlines():
        line = line.strip().rstrip(",")
        if not line or line.startswith("--"):
            continue
        name, rest = line.split(None, 1)
        out.append((name, re.sub(r"\s+NOT NULL$", "", rest.strip(), flags=re.IGNORECASE)))
    return out


def table_dir(root: str, table: str) -> str:
    schema, name = table.split(".")
    return f"{root.rstrip('/')}/{schema}/{name}"


def partition_dir(root: str, table: str, symbol: str, day: dt.date) -> str:
    return f"{table_dir(root, table)}/symbol={symbol}/day={day.isoformat()}"


def _has_files(con: duckdb.DuckDBPyConnection, pattern: str) -> bool:
    if is_remote(pattern):
        return bool(con.execute("SELECT count(*) FROM glob(?)", [pattern]).fetchall()[0][0])
    root = Path(pattern.split("*", 1)[0])
    return root.exists() and any(root.rglob("*.parquet"))


def create_view(con: duckdb.DuckDBPyConnection, root: str, table: str) -> None:
    """(Re)create the view of `table`: its typed files, or an empty typed relation while it has none."""
    schema = table.split(".")[0]
    cols = columns(table)
    typed = ", ".join(f"CAST({name} AS {kind}) AS {name}" for name, kind in cols)
    pattern = f"{table_dir(root, table)}/*/*/*.parquet"
    if _has_files(con, pattern):
        source = (f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true, "
                  "hive_types = {'symbol': VARCHAR, 'day': DATE})")
    else:
        source = "(SELECT " + ", ".join(f"NULL::{kind} AS {name}" for name, kind in cols) + " WHERE false)"
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT {typed} FROM {source}")


def connect(root: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose tables are views over the Parquet files under `root`."""
    con = duckdb.connect(":memory:")
    if is_remote(root):
        con.execute("INSTALL httpfs; LOAD httpfs;")
    elif not read_only:
        Path(root).mkdir(parents=True, exist_ok=True)
    con.execute(f"SET VARIABLE {ROOT_VARIABLE} = ?", [root])
    for table in TABLES:
        create_view(con, root, table)
    return con


def refuse(con: duckdb.DuckDBPyConnection, what: str) -> None:
    """Raise a clear error for a writer that has no Parquet layout yet (user-supplied liquidations)."""
    if root_of(con) is not None:
        raise NotImplementedError(f"{what} is not supported with LIQ_STORAGE=parquet yet: run it against the "
                                  "DuckDB warehouse (LIQ_STORAGE=duckdb)")


def write_partition(con: duckdb.DuckDBPyConnection, root: str, table: str, symbol: str, day: dt.date,
                    select_sql: str, params, part: str = "part", unique: tuple[str, str] | None = None) -> int:
    """Write the rows of `select_sql` as the (symbol, day) partition file `part` of `table`, atomically.

    The rows are first inserted into a typed temporary table (the DDL's types and NOT NULL constraints,
    as in the DuckDB mode); rows of another symbol or day are refused. `unique` as in
    warehouse.io.replace_partition. Returns the number of rows written.
    """
    scratch = f"_liq_write_{uuid.uuid4().hex[:8]}"
    con.execute(f"CREATE TEMP TABLE {scratch} ({TABLES[table]})")
    try:
        con.execute(f"INSERT INTO {scratch} BY NAME {select_sql}", params or [])
        if unique is not None:  # as warehouse.io.replace_partition: deduplicate only when the key repeats
            if not strictly_increasing(con, scratch, unique[0]):
                con.execute(f"DELETE FROM {scratch}")
                con.execute(f"INSERT INTO {scratch} BY NAME {unique[1]}", params or [])
        rows, foreign = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE symbol IS DISTINCT FROM ? OR day IS DISTINCT FROM ?) "
            f"FROM {scratch}", [symbol, day]).fetchall()[0]
        if foreign:
            raise ValueError(f"{table}: {foreign} rows of the write for {symbol} {day} belong to another partition")
        folder = partition_dir(root, table, symbol, day)
        final = f"{folder}/{part}.parquet"
        others = ", ".join(name for name, _ in columns(table) if name not in PARTITION_COLUMNS)
        if is_remote(root):
            con.execute(f"COPY (SELECT {others} FROM {scratch}) TO '{final}' (FORMAT parquet)")
        else:
            Path(folder).mkdir(parents=True, exist_ok=True)
            tmp = f"{folder}/.{part}.{uuid.uuid4().hex[:8]}.tmp"
            try:
                con.execute(f"COPY (SELECT {others} FROM {scratch}) TO '{tmp}' (FORMAT parquet)")
                os.replace(tmp, final)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {scratch}")
    create_view(con, root, table)
    return int(rows)
