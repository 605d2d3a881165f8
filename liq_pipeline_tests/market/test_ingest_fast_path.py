"""The aggTrades ingest skips deduplication and sorting when a file's ids already strictly increase, and
falls back to them (in the same transaction) when they do not: the rows stored are those of the full
parser either way, in DuckDB and Parquet storage."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pytest

from liq_pipeline.market import parsers
from liq_pipeline.market.formats import AGG_TRADES_COLUMNS
from liq_pipeline.warehouse import parquet
from liq_pipeline.warehouse.io import replace_partition, strictly_increasing
from liq_pipeline_tests.support.archive_csv import AGG_ROWS, DAY, T0, write

CLEAN = [(i, f"{90_000 + i / 10:.1f}", "0.010", 10 * i, 10 * i + 2, T0 + 1000 * i, "true" if i % 3 else "False")
         for i in range(1, 200)]
MONTHLY = [(10, "1", "1", 1, 1, T0 + 1, "true"), (5, "1", "1", 1, 1, T0 - 1, "true"),
           (7, "1", "1", 1, 1, T0 + 86_400_000, "true"), (6, "1", "1", 1, 1, T0 + 3, "false")]


def _store(con, path, only_day=False) -> list[tuple]:
    checked = parsers.agg_trades_checked_select(path, "BTCUSDT", DAY, only_day)
    rows = replace_partition(con, "raw.agg_trades", "BTCUSDT", DAY, checked.fast, unique=(checked.key, checked.full))
    stored = con.execute("SELECT * FROM raw.agg_trades WHERE symbol = 'BTCUSDT' AND day = ?", [DAY]).fetchall()
    assert rows == len(stored)
    return stored


@pytest.fixture(params=["duckdb", "parquet"])
def con(request, tmp_path):
    c = duckdb.connect(str(tmp_path / "w.duckdb")) if request.param == "duckdb" else parquet.connect(str(tmp_path / "pq"))
    yield c
    c.close()


@pytest.mark.parametrize(("rows", "only_day"), [(CLEAN, False), (AGG_ROWS, False), (MONTHLY, True)],
                         ids=["clean", "duplicates-unsorted", "monthly-interleaved"])
def test_checked_ingest_stores_the_rows_of_the_full_parser(con, tmp_path, rows, only_day):
    path = write(tmp_path, "a.csv", AGG_TRADES_COLUMNS, rows)
    expected = duckdb.sql(parsers.agg_trades_select(path, "BTCUSDT", DAY, only_day)).fetchall()
    stored = _store(con, path, only_day)
    assert stored == expected  # same rows, deduplicated, in id order
    ids = [r[2] for r in stored]
    assert ids == sorted(set(ids))


def test_fast_path_is_taken_only_for_strictly_increasing_ids(tmp_path):
    con = duckdb.connect()
    for name, rows, clean in (("clean", CLEAN, True), ("dup", AGG_ROWS, False)):
        path = write(tmp_path, f"{name}.csv", None, rows)
        con.execute(f"CREATE TABLE {name} AS {parsers.agg_trades_checked_select(path, 'X', DAY).fast}")
        assert strictly_increasing(con, name, "agg_trade_id") is clean
    con.execute("CREATE TABLE shuffled AS SELECT * FROM clean ORDER BY hash(agg_trade_id)")
    assert not strictly_increasing(con, "shuffled", "agg_trade_id")
    con.execute("CREATE TABLE big AS SELECT range AS k FROM range(300000)")
    assert strictly_increasing(con, "big", "k")
    con.execute("INSERT INTO big VALUES (123)")
    assert not strictly_increasing(con, "big", "k")


def test_bad_boolean_in_the_fast_path_is_a_clear_error_and_keeps_the_old_rows(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    _store(con, write(tmp_path, "good.csv", None, CLEAN))
    bad = write(tmp_path, "bad.csv", None, [*CLEAN[:5], (6, "1", "1", 1, 1, T0 + 6000, "maybe")])
    with pytest.raises(duckdb.Error) as err:
        _store(con, bad)
    message = str(parsers.describe_duckdb_error(err.value, bad))
    assert "bad.csv" in message and "maybe" in message
    assert con.execute("SELECT count(*) FROM raw.agg_trades").fetchall()[0][0] == len(CLEAN)
    stored = con.execute("SELECT transact_time, is_buyer_maker FROM raw.agg_trades ORDER BY agg_trade_id").fetchall()
    assert stored[0] == (dt.datetime(2026, 1, 5, 0, 0, 1), True) and stored[2][1] is False
    assert np.all(np.diff([r[0].timestamp() for r in stored]) > 0)
