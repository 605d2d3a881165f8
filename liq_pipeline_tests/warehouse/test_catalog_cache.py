"""Catalog look-ups are answered once per connection (issue 29: some ten thousand in `make demo`): a table seen
or created stays known for the connection's life, a missing one is asked again, and another connection
asks afresh."""

import duckdb

from liq_pipeline.warehouse import catalog
from liq_pipeline.warehouse.schema import ensure_tables


def test_a_missing_table_is_asked_again_and_an_existing_one_is_kept():
    con = duckdb.connect()
    assert not catalog.table_exists(con, "model.flow_book")
    con.execute("CREATE SCHEMA model; CREATE TABLE model.flow_book (x INTEGER)")
    assert catalog.table_exists(con, "model.flow_book")  # the "no" was not kept
    assert "model.flow_book" in catalog.known_tables(con)


def test_ensure_tables_creates_once_per_connection_and_afresh_on_another(tmp_path):
    db = str(tmp_path / "w.duckdb")
    first = duckdb.connect(db)
    ensure_tables(first, "raw.klines")
    assert catalog.table_exists(first, "raw.klines")
    first.execute("DROP TABLE raw.klines")  # never done by the chain; shows what is kept per connection
    ensure_tables(first, "raw.klines")
    assert "raw.klines" in catalog.known_tables(first)
    first.close()
    second = duckdb.connect(db)
    assert not catalog.table_exists(second, "raw.klines")
    ensure_tables(second, "raw.klines")
    assert second.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'klines'").fetchone()[0] == 1


def test_the_parquet_root_is_read_once_per_connection(tmp_path):
    from liq_pipeline.warehouse import parquet

    con = parquet.connect(str(tmp_path / "pq"))
    assert catalog.root_of(con) == str(tmp_path / "pq")
    assert catalog.root_of(con) == str(tmp_path / "pq")
    plain = duckdb.connect()
    assert catalog.root_of(plain) is None
