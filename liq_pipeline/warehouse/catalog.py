"""Catalog look-ups that need no import beyond the connection itself (the `liq` answers import this
instead of warehouse/io.py, which pulls the DuckDB Python package and the Parquet layer)."""

from __future__ import annotations


def table_exists(con, table: str) -> bool:
    """Whether `table` exists (a table, or a view in the parquet storage mode)."""
    schema, name = table.split(".")
    # duckdb_tables() is about twice as fast as information_schema.tables (the heatmap asks per day).
    row = con.execute(
        "SELECT (SELECT count(*) FROM duckdb_tables() WHERE schema_name = $s AND table_name = $n) "
        "+ (SELECT count(*) FROM duckdb_views() WHERE schema_name = $s AND view_name = $n)", {"s": schema, "n": name}
    ).fetchall()
    return bool(row[0][0])


def existing_tables(con) -> frozenset[str]:
    """Every table and view as 'schema.name', in one catalog query (for a reader that checks several)."""
    rows = con.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables() "
                       "UNION ALL SELECT schema_name || '.' || view_name FROM duckdb_views()").fetchall()
    return frozenset(r[0] for r in rows)
