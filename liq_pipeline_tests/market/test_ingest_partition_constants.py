"""The aggTrades ingest holds its parsed rows without the partition's constant columns (symbol, day) and the
write adds them back (market/ingest.py, CheckedSelect.partition_constant): the rows stored are those of the
full parser, in DuckDB and Parquet storage, on the fast path and on the deduplicating one; the booleans keep
their rule (true/false in any case, anything else refused)."""

from __future__ import annotations

import duckdb
import pytest

from liq_pipeline.market import parsers
from liq_pipeline.market.archive import ArchiveClient
from liq_pipeline.market.formats import AGG_TRADES_COLUMNS, ArchiveFile
from liq_pipeline.market.ingest import ingest_partition, prepare_partition
from liq_pipeline.warehouse import parquet
from liq_pipeline.warehouse.catalog import table_exists
from liq_pipeline_tests.support.archive_csv import AGG_ROWS, DAY, T0
from liq_pipeline_tests.support.mirror_fixture import write_zip

SPEC = ArchiveFile("aggTrades", "BTCUSDT", DAY)
CLEAN = [(i, f"{90_000 + i / 10:.1f}", "0.010", 10 * i, 10 * i + 2, T0 + 1000 * i,
          ("true", "false", " TRUE ", "False")[i % 4]) for i in range(1, 200)]


def _select(csv, only_day):
    return parsers.agg_trades_checked_select(csv, "BTCUSDT", DAY, only_day)


@pytest.fixture(params=["duckdb", "parquet"])
def con(request, tmp_path):
    c = duckdb.connect(str(tmp_path / "w.duckdb")) if request.param == "duckdb" else parquet.connect(str(tmp_path / "pq"))
    yield c
    c.close()


@pytest.mark.parametrize("rows", [CLEAN, AGG_ROWS], ids=["clean", "duplicates-unsorted"])
def test_the_stored_rows_are_the_full_parsers_with_their_symbol_and_day(con, tmp_path, rows):
    write_zip(tmp_path / "mirror", SPEC, AGG_TRADES_COLUMNS, rows)
    client = ArchiveClient(mirror_dir=tmp_path / "mirror", cache_dir=tmp_path / "cache")
    prepared = prepare_partition(client, "raw.agg_trades", "BTCUSDT", DAY, SPEC, _select, tmp_path / "work")
    assert prepared.without_partition_columns
    assert "symbol" not in prepared.parsed.column_names and "day" not in prepared.parsed.column_names
    result = ingest_partition(con, client, "raw.agg_trades", "BTCUSDT", DAY, SPEC, _select)
    csv = client.extract_csv(client.fetch(SPEC), tmp_path / "check")
    expected = duckdb.sql(parsers.agg_trades_select(csv, "BTCUSDT", DAY)).fetchall()
    stored = con.execute("SELECT * FROM raw.agg_trades ORDER BY agg_trade_id").fetchall()
    assert stored == expected and result.rows == len(expected)
    assert {(r[0], r[1]) for r in stored} == {("BTCUSDT", DAY)}


def test_a_cell_that_is_not_a_boolean_is_still_refused(con, tmp_path):
    write_zip(tmp_path / "mirror", SPEC, AGG_TRADES_COLUMNS, [*CLEAN[:5], (300, "1", "1", 1, 1, T0 + 1, "yes")])
    client = ArchiveClient(mirror_dir=tmp_path / "mirror", cache_dir=tmp_path / "cache")
    with pytest.raises(parsers.MalformedArchiveFile, match="is_buyer_maker must be true or false, got yes"):
        ingest_partition(con, client, "raw.agg_trades", "BTCUSDT", DAY, SPEC, _select)
    stored = con.execute("SELECT count(*) FROM raw.agg_trades").fetchone()[0] if table_exists(con, "raw.agg_trades") else 0
    assert stored == 0


def test_parsed_booleans_follow_the_rule_in_any_case():
    rows = duckdb.sql("SELECT " + parsers._bool("x") + " FROM (VALUES ('true'), ('false'), (' TRUE '), ('False')) t(x)")
    assert [r[0] for r in rows.fetchall()] == [True, False, True, False]
    with pytest.raises(duckdb.Error, match="an empty cell"):
        duckdb.sql("SELECT " + parsers._bool("x") + " FROM (VALUES (NULL::VARCHAR)) t(x)").fetchall()
