"""Catalog look-ups that need no import beyond the connection itself (the `liq` answers import this
instead of warehouse/io.py, which pulls the DuckDB Python package and the Parquet layer)."""

from __future__ import annotations

import weakref

#: Per open connection: the tables seen to exist (or created by schema.ensure_tables), and its Parquet root.
#: A range run asks the same few questions of one connection every day (about 1 ms of CPU each, some ten
#: thousand in `make demo`); a table of the warehouse is never dropped while the chain runs, so a "yes" stays
#: true for the connection's life. A "no" is never kept (the table may be created next).
_EXISTING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ROOTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def known_tables(con) -> set[str]:
    """The tables known to exist on `con` (kept for the connection's life; empty for a connection that
    cannot be weakly referenced, which is then asked every time)."""
    try:
        return _EXISTING.setdefault(con, set())
    except TypeError:
        return set()


def table_exists(con, table: str) -> bool:
    """Whether `table` exists (a table, or a view in the parquet storage mode)."""
    known = known_tables(con)
    if table in known:
        return True
    schema, name = table.split(".")
    # duckdb_tables() is about twice as fast as information_schema.tables (the heatmap asks per day).
    row = con.execute(
        "SELECT (SELECT count(*) FROM duckdb_tables() WHERE schema_name = $s AND table_name = $n) "
        "+ (SELECT count(*) FROM duckdb_views() WHERE schema_name = $s AND view_name = $n)", {"s": schema, "n": name}
    ).fetchall()
    if row[0][0]:
        known.add(table)
    return bool(row[0][0])


def existing_tables(con) -> frozenset[str]:
    """Every table and view as 'schema.name', in one catalog query (for a reader that checks several)."""
    rows = con.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables() "
                       "UNION ALL SELECT schema_name || '.' || view_name FROM duckdb_views()").fetchall()
    return frozenset(r[0] for r in rows)


#: The connection variable that marks a Parquet-storage connection (warehouse/parquet.py sets it).
ROOT_VARIABLE = "liq_parquet_root"


def root_of(con) -> str | None:
    """The Parquet root of a connection made by `parquet.connect`, None for a DuckDB-file connection (asked
    once per connection: `parquet.connect` sets it before returning the connection)."""
    try:
        return _ROOTS[con]
    except (KeyError, TypeError):
        pass
    try:
        value = con.execute(f"SELECT getvariable('{ROOT_VARIABLE}')").fetchall()[0][0]
    except Exception as e:  # a DuckDB error (the engine's classes are not imported here, see the docstring)
        if type(e).__module__.split(".")[0] not in ("duckdb", "_duckdb"):
            raise
        value = None
    try:
        _ROOTS[con] = value or None
    except TypeError:
        pass
    return value or None


def strictly_increasing(con, table: str, key: str, symbol: str | None = None,
                        day: object | None = None) -> bool:
    """Whether `key` strictly increases over the rows (of one partition), in the order DuckDB scans them.
    True proves the keys distinct whatever that order is (a strictly increasing sequence has no repeat);
    one pass, no hash table, no sort."""
    where = "WHERE symbol = ? AND day = ?" if symbol is not None else ""
    bad = con.execute(f"SELECT count(*) FILTER (WHERE k <= prev) FROM (SELECT {key} AS k, lag({key}) OVER () AS prev "
                      f"FROM {table} {where})", [symbol, day] if symbol is not None else []).fetchall()[0][0]
    return bad == 0
