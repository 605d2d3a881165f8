"""The `parquet` storage mode: every partition of every table is one Parquet file in a hive layout,

    <root>/<schema>/<table>/symbol=<SYMBOL>/day=<YYYY-MM-DD>/<part>.parquet

and the tables readers see are DuckDB views over those files, typed by the DDL of warehouse/schema.py.
A process keeps one in-memory DuckDB per root with the views and hands out a cursor of it per connection
(`connect`), so any number of processes read and write partitions at once: no single-writer lock. A write goes to a temporary file in the partition's folder and
is renamed over the old one (atomic and idempotent on a local file system; on an object store, via DuckDB
httpfs, one PUT of the final key, which is atomic per object).

The connection carries its root in the DuckDB variable `liq_parquet_root`; `is_parquet(con)` tells the
write helpers of warehouse/io.py which way to write.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
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


#: The file in a table's folder that lists the columns every Parquet file of the table holds (the DDL's,
#: without the partition columns), written once they all do.
COLUMNS_MARK = "_columns.txt"


def _stored_columns(table: str) -> str:
    return "\n".join(name for name, _ in columns(table) if name not in PARTITION_COLUMNS) + "\n"


def _all_files_complete(con: duckdb.DuckDBPyConnection, root: str, table: str, pattern: str) -> bool:
    """Whether every stored file of `table` holds all the DDL's columns, so the view may bind them by position
    from one file (no footer of the others read). Answered from COLUMNS_MARK when it is current; otherwise
    every footer is read once (a root written before the mark, or after the DDL gained a column) and the mark
    is written when they all do. Remote roots are not marked (always False: union_by_name)."""
    if is_remote(root):
        return False
    mark = Path(table_dir(root, table)) / COLUMNS_MARK
    wanted = _stored_columns(table)
    try:
        if mark.read_text() == wanted:
            return True
    except OSError:
        pass
    names = set(wanted.split())
    files = con.execute("SELECT file_name, list(name) FROM parquet_schema(?) GROUP BY file_name", [pattern]).fetchall()
    if not all(names <= set(cols) for _, cols in files):
        return False
    tmp = mark.with_name(f".{COLUMNS_MARK}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(wanted)
        os.replace(tmp, mark)
    except OSError:  # a read-only root: the view still binds from one file, the mark waits for a writer
        tmp.unlink(missing_ok=True)
    return True


def create_view(con: duckdb.DuckDBPyConnection, root: str, table: str) -> bool:
    """(Re)create the view of `table`: its typed files, or an empty typed relation while it has none.
    Returns whether it has files.

    DuckDB binds a view at every query that names it. When every file holds the DDL's columns (COLUMNS_MARK)
    the view reads them by name from the first file's schema, so binding lists the files and reads one
    footer; otherwise (files written with fewer columns by older code) `union_by_name` reads every footer and
    gives the missing columns as NULL (4.7 ms a view at 30 days of files, 41.6 ms at 365, benchmarks.md)."""
    schema = table.split(".")[0]
    cols = columns(table)
    typed = ", ".join(f"CAST({name} AS {kind}) AS {name}" for name, kind in cols)
    pattern = f"{table_dir(root, table)}/*/*/*.parquet"
    has_files = _has_files(con, pattern)
    if has_files:
        union = "false" if _all_files_complete(con, root, table, pattern) else "true"
        source = (f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = {union}, "
                  "hive_types = {'symbol': VARCHAR, 'day': DATE})")
    else:
        source = "(SELECT " + ", ".join(f"NULL::{kind} AS {name}" for name, kind in cols) + " WHERE false)"
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT {typed} FROM {source}")
    return has_files


class _Views:
    """One process's in-memory DuckDB over a root: the views are created once (about 20 tables, each bound
    against its files) instead of per connection, and every connection is a cursor of it (its own temporary
    tables, registered frames and variables). A table without files is an empty view until a file appears:
    rechecked at every connection (another process may have written it) and after this process's writes."""

    def __init__(self, root: str):
        self.root, self.lock = root, threading.RLock()
        self.db = duckdb.connect(":memory:")
        if is_remote(root):
            self.db.execute("INSTALL httpfs; LOAD httpfs;")
        self.with_files: set[str] = set()
        self.refresh(tuple(TABLES))

    def refresh(self, tables) -> None:
        with self.lock:
            for table in tables:
                if create_view(self.db, self.root, table):
                    self.with_files.add(table)
                else:
                    self.with_files.discard(table)

    def stale(self) -> list[str]:
        """Tables whose view no longer matches the files: empty views whose table now has files, and views
        over files whose folder went away (a stat or two per table, no DuckDB statement)."""
        out = []
        for table in TABLES:
            pattern = f"{table_dir(self.root, table)}/*/*/*.parquet"
            if table in self.with_files:
                if not is_remote(self.root) and not os.path.isdir(table_dir(self.root, table)):
                    out.append(table)
            elif _has_files(self.db, pattern):
                out.append(table)
        return out


_VIEWS: dict[tuple[str, int], _Views] = {}
_VIEWS_LOCK = threading.Lock()


def _views(root: str) -> _Views:
    key = (root, os.getpid())  # a forked child must not share its parent's DuckDB
    with _VIEWS_LOCK:
        views = _VIEWS.get(key)
        if views is None:
            views = _VIEWS[key] = _Views(root)
            return views
    with views.lock:
        stale = views.stale()
        if stale:
            views.refresh(stale)
    return views


def connect(root: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection whose tables are views over the Parquet files under `root` (a cursor of the process's
    in-memory DuckDB for `root`, see _Views; closing it leaves the views for the next one)."""
    if not is_remote(root) and not read_only:
        Path(root).mkdir(parents=True, exist_ok=True)
    views = _views(root)
    with views.lock:  # the shared connection is used by one thread at a time (a `liq serve` worker pool)
        con = views.db.cursor()
    con.execute(f"SET VARIABLE {ROOT_VARIABLE} = ?", [root])
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
    views = _views(root)
    if table not in views.with_files:  # a view over files lists them at every query: only an empty one changes
        views.refresh((table,))
    return int(rows)
