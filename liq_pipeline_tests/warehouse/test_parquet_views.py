"""The Parquet storage's views (warehouse/parquet.py): bound from one file's schema when every file holds the
DDL's columns, read with union_by_name when older files lack some, created once per process and root."""

from __future__ import annotations

import datetime as dt

import duckdb

from liq_pipeline.warehouse import parquet
from liq_pipeline.warehouse.io import replace_partition

TABLE = "raw.funding_rates"
SYMBOL = "BTCUSDT"


def _rows(day: dt.date) -> str:
    return (f"SELECT '{SYMBOL}' AS symbol, DATE '{day}' AS day, TIMESTAMP '{day} 08:00' AS calc_time, "
            f"TIMESTAMP '{day} 08:00' AS funding_time, 8 AS funding_interval_hours, 1e-4 AS last_funding_rate, "
            "1e-4 AS funding_rate_8h, 'archive' AS source")


def _view_sql(con, table: str) -> str:
    schema, name = table.split(".")
    return con.execute("SELECT sql FROM duckdb_views() WHERE schema_name = ? AND view_name = ?", [schema, name]).fetchone()[0]


def _forget_views():
    parquet._VIEWS.clear()  # as a new process would start


def test_written_files_are_marked_and_bound_without_reading_every_footer(tmp_path):
    root = str(tmp_path / "pq")
    con = parquet.connect(root)
    assert "WHERE false" in _view_sql(con, TABLE)  # no files yet: the empty typed relation
    for n in (1, 2, 3):
        replace_partition(con, TABLE, SYMBOL, dt.date(2026, 1, n), _rows(dt.date(2026, 1, n)))
    mark = tmp_path / "pq" / "raw" / "funding_rates" / parquet.COLUMNS_MARK
    assert mark.read_text().split() == ["calc_time", "funding_time", "funding_interval_hours", "last_funding_rate",
                                        "funding_rate_8h", "source"]
    assert "union_by_name = false" in _view_sql(con, TABLE)
    assert con.execute(f"SELECT count(*), count(DISTINCT day) FROM {TABLE}").fetchone() == (3, 3)
    con.close()
    _forget_views()
    again = parquet.connect(root, read_only=True)
    assert "union_by_name = false" in _view_sql(again, TABLE)
    assert again.execute(f"SELECT sum(funding_interval_hours) FROM {TABLE}").fetchone()[0] == 24


def test_files_of_older_code_with_fewer_columns_read_with_nulls(tmp_path):
    root = str(tmp_path / "pq")
    con = parquet.connect(root)
    replace_partition(con, TABLE, SYMBOL, dt.date(2026, 1, 2), _rows(dt.date(2026, 1, 2)))
    con.close()
    # A partition written before the table had its `source` column, and no mark (a root of older code).
    old = tmp_path / "pq" / "raw" / "funding_rates" / f"symbol={SYMBOL}" / "day=2026-01-01"
    old.mkdir(parents=True)
    duckdb.sql(f"COPY (SELECT * EXCLUDE (symbol, day, source) FROM ({_rows(dt.date(2026, 1, 1))})) "
               f"TO '{old / 'part.parquet'}' (FORMAT parquet)")
    (tmp_path / "pq" / "raw" / "funding_rates" / parquet.COLUMNS_MARK).unlink()
    _forget_views()
    con = parquet.connect(root)
    assert "union_by_name = true" in _view_sql(con, TABLE)
    rows = con.execute(f"SELECT day, source FROM {TABLE} ORDER BY day").fetchall()
    assert rows == [(dt.date(2026, 1, 1), None), (dt.date(2026, 1, 2), "archive")]
    assert not (tmp_path / "pq" / "raw" / "funding_rates" / parquet.COLUMNS_MARK).exists()
    # Rewriting the old partition with today's columns makes every file complete: marked, one footer again.
    replace_partition(con, TABLE, SYMBOL, dt.date(2026, 1, 1), _rows(dt.date(2026, 1, 1)))
    _forget_views()
    con = parquet.connect(root)
    assert "union_by_name = false" in _view_sql(con, TABLE)
    assert con.execute(f"SELECT count(source) FROM {TABLE}").fetchone()[0] == 2


def test_a_root_of_older_code_whose_files_are_complete_gets_its_mark(tmp_path):
    root = str(tmp_path / "pq")
    con = parquet.connect(root)
    replace_partition(con, TABLE, SYMBOL, dt.date(2026, 1, 1), _rows(dt.date(2026, 1, 1)))
    mark = tmp_path / "pq" / "raw" / "funding_rates" / parquet.COLUMNS_MARK
    mark.unlink()
    _forget_views()
    con = parquet.connect(root)
    assert "union_by_name = false" in _view_sql(con, TABLE)
    assert mark.exists()


def test_connections_share_the_views_but_not_their_temporary_tables(tmp_path):
    root = str(tmp_path / "pq")
    a, b = parquet.connect(root), parquet.connect(root)
    a.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS x")
    assert b.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'scratch'").fetchone()[0] == 0
    replace_partition(a, TABLE, SYMBOL, dt.date(2026, 1, 1), _rows(dt.date(2026, 1, 1)))
    assert b.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 1  # b sees a's write
    a.close()
    assert parquet.root_of(b) == root


def test_a_table_another_process_fills_appears_at_the_next_connection(tmp_path):
    root = str(tmp_path / "pq")
    con = parquet.connect(root)
    assert con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 0
    folder = tmp_path / "pq" / "raw" / "funding_rates" / f"symbol={SYMBOL}" / "day=2026-01-01"
    folder.mkdir(parents=True)  # written by another process: this one's view is still the empty relation
    duckdb.sql(f"COPY (SELECT * EXCLUDE (symbol, day) FROM ({_rows(dt.date(2026, 1, 1))})) "
               f"TO '{folder / 'part.parquet'}' (FORMAT parquet)")
    assert parquet.connect(root).execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 1


def test_threads_connect_and_read_at_once(tmp_path):
    import threading

    root = str(tmp_path / "pq")
    con = parquet.connect(root)
    for n in (1, 2):
        replace_partition(con, TABLE, SYMBOL, dt.date(2026, 1, n), _rows(dt.date(2026, 1, n)))
    counts, errors = [], []

    def read():
        try:
            for _ in range(20):
                c = parquet.connect(root, read_only=True)
                counts.append(c.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])
                c.close()
        except Exception as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and counts == [2] * 80
