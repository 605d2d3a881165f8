"""The heatmap's reads of the book engine's tables (warehouse/readers/heatmap.py, warehouse/trade_sizes.py):
the snapshot rows come in the order ORDER BY snapshot_time, side, bin_id gave, whatever order the table
holds them in; the consumption of every variant read at once equals the per-variant reads; the size flag
equals the one of the full size choice."""

import datetime as dt

import duckdb
import numpy as np
import pytest

from liq_pipeline.warehouse.readers.heatmap import (
    flow_consumed_by_variant,
    flow_consumed_rows,
    flow_snapshot_rows,
)
from liq_pipeline.warehouse.schema import ensure_tables
from liq_pipeline.warehouse.trade_sizes import day_size_choice, day_size_flag

DAY = dt.date(2026, 1, 5)


def _snapshots(con, order_sql: str) -> None:
    ensure_tables(con, "model.flow_snapshots", "model.flow_steps")
    rng = np.random.default_rng(4)
    n = 400
    con.execute("""CREATE TEMP TABLE src AS
                   SELECT 'BTCUSDT' AS symbol, DATE '2026-01-05' AS day, variant,
                          TIMESTAMP '2026-01-05' + to_minutes(15 * (1 + (i // 40))) AS snapshot_time,
                          CASE WHEN i % 2 = 0 THEN 'long' ELSE 'short' END AS side, (i * 7919) % 97 + i // 2 * 100 AS bin_id,
                          1.0 AS price, x AS notional_usd
                   FROM (SELECT unnest(range(?)) AS i, unnest(?) AS x), (VALUES ('flow'), ('ofi')) v(variant)""",
                [n, rng.random(n).tolist()])
    con.execute(f"INSERT INTO model.flow_snapshots BY NAME SELECT * FROM src ORDER BY {order_sql}")


@pytest.mark.parametrize("order_sql", ["snapshot_time, side, bin_id",  # as flow_book writes them
                                       "notional_usd", "bin_id DESC"])  # any other order: sorted on read
def test_snapshot_rows_come_in_time_side_bin_order_whatever_the_stored_order(order_sql):
    con = duckdb.connect()
    _snapshots(con, order_sql)
    got = flow_snapshot_rows(con, "BTCUSDT", DAY, "flow")
    want = con.execute("""SELECT snapshot_time, CASE side WHEN 'long' THEN 1 ELSE -1 END AS sign, bin_id, notional_usd
                          FROM model.flow_snapshots WHERE variant = 'flow' ORDER BY snapshot_time, side, bin_id""").fetchnumpy()
    assert got["sign"].size == 400
    for key in want:
        assert np.array_equal(np.asarray(got[key]), np.asarray(want[key])), key


def test_consumption_of_every_variant_at_once_equals_the_per_variant_reads():
    con = duckdb.connect()
    _snapshots(con, "snapshot_time, side, bin_id")
    con.execute("""INSERT INTO model.flow_steps BY NAME
                   SELECT 'BTCUSDT' AS symbol, DATE '2026-01-05' AS day, v AS variant,
                          TIMESTAMP '2026-01-05' + to_minutes(15 * (1 + i % 9)) AS step_end,
                          CASE WHEN i % 3 = 0 THEN 'long' ELSE 'short' END AS side, 5.0 * (1 + i % 4) AS leverage,
                          i * 0.37 AS consumed_usd, i * 0.1 AS consumed_per_weight_usd
                   FROM range(60) t(i), (VALUES ('flow'), ('ofi'), ('hybrid')) s(v)""")
    every = flow_consumed_by_variant(con, "BTCUSDT", DAY)
    assert sorted(every) == ["flow", "hybrid", "ofi"]
    for variant, got in every.items():
        one = flow_consumed_rows(con, "BTCUSDT", DAY, variant)
        key = lambda r: sorted(zip(r["step_end"].tolist(), r["side"].tolist(), r["usd"].tolist(), strict=True))  # noqa: E731
        assert key(got) == key(one)
    assert flow_consumed_by_variant(duckdb.connect(), "BTCUSDT", DAY) == {}  # no flow_steps table: nothing


def test_size_flag_equals_the_flag_of_the_full_size_choice():
    con = duckdb.connect()
    for trades in (np.array([120.0, 5_000.0, 80_000.0]), np.array([0.0, np.nan]), np.zeros(0), None):
        assert day_size_flag(con, "BTCUSDT", DAY, 5, trades) == day_size_choice(con, "BTCUSDT", DAY, 5, trades).flag
    assert day_size_flag(con, "BTCUSDT", DAY, 5, np.array([0.0])).startswith("size_prior")
