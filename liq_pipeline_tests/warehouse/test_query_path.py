"""`liq heatmap` finds its snapshot in model.heatmap_snapshots (one row per snapshot, written in the heatmap
partition's transaction) and answers exactly as the scan of model.liquidation_heatmap does; a warehouse
written before the index existed still answers through the scan."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pytest

from liq_pipeline.cli import main as cli
from liq_pipeline.pipeline.flow_day import materialize_flow_day
from liq_pipeline.pipeline.heatmap_day import compute_heatmap_day, write_heatmap_day
from liq_pipeline.warehouse.io import replace_partition, replace_partitions
from liq_pipeline_tests.support.busy_day import DAY, SYMBOL, busy_day_tables, store_tables


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("query") / "w.duckdb"
    con = store_tables(path, busy_day_tables(), None)
    materialize_flow_day(con, SYMBOL, DAY)
    result = compute_heatmap_day(con, SYMBOL, DAY, variants=("hybrid", "ofi"))
    rows = write_heatmap_day(con, result)
    con.close()
    return path, rows


def test_index_has_one_row_per_snapshot_matching_the_heatmap(warehouse):
    path, rows = warehouse
    with duckdb.connect(str(path), read_only=True) as con:
        index = con.execute("SELECT variant, snapshot_time, levels, long_usd, short_usd FROM model.heatmap_snapshots "
                            "ORDER BY ALL").fetchall()
        scan = con.execute("""SELECT variant, snapshot_time, count(*), sum(notional_usd) FILTER (WHERE side = 'long'),
                                     sum(notional_usd) FILTER (WHERE side = 'short')
                              FROM model.liquidation_heatmap GROUP BY ALL ORDER BY ALL""").fetchall()
    assert rows > 1000 and len(index) == len(scan) > 100
    assert sum(r[2] for r in index) == rows
    for a, b in zip(index, scan, strict=True):
        assert a[:3] == b[:3]
        assert np.allclose(a[3:], [x or 0.0 for x in b[3:]], rtol=1e-12, atol=1e-3)


def _answer(con, variant: str, at: dt.datetime | None):
    try:
        return cli.resolve_snapshot(con, SYMBOL, variant, at)
    except cli.CliError as e:
        return str(e)


def test_index_answers_like_the_heatmap_scan(warehouse, tmp_path):
    path, _ = warehouse
    start = dt.datetime.combine(DAY, dt.time())
    instants = [None, start - dt.timedelta(hours=1), start, start + dt.timedelta(minutes=1),
                start + dt.timedelta(minutes=15), start + dt.timedelta(days=1), start + dt.timedelta(days=1, hours=2)]
    instants += [start + dt.timedelta(minutes=int(m)) for m in np.random.default_rng(2).integers(0, 1440, 40)]
    old = tmp_path / "old.duckdb"
    with duckdb.connect(str(old)) as con:  # the same heatmap, written before the index existed
        con.execute(f"ATTACH '{path}' AS new (READ_ONLY)")
        con.execute("CREATE SCHEMA model")
        con.execute("CREATE TABLE model.liquidation_heatmap AS SELECT * FROM new.model.liquidation_heatmap")
    with cli.connect_read_only(path) as indexed, cli.connect_read_only(old) as scanned:
        assert cli._has_table(indexed, "model.heatmap_snapshots")
        assert not cli._has_table(scanned, "model.heatmap_snapshots")
        for variant in ("hybrid", "ofi"):
            answers = [(_answer(indexed, variant, at), _answer(scanned, variant, at)) for at in instants]
            assert all(a == b for a, b in answers), [(at, a, b) for at, (a, b) in zip(instants, answers, strict=True)
                                                     if a != b]
            found = [a for a, _ in answers if not isinstance(a, str)]
            assert len(found) > 30 and any(isinstance(a, str) for a, _ in answers)  # answers and refusals both


def test_index_and_heatmap_partitions_are_replaced_together(tmp_path):
    """A failing second write rolls back the first: the old heatmap partition and its index survive."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    select = ("SELECT 'BTCUSDT' AS symbol, DATE '2026-01-05' AS day, 'hybrid' AS variant, "
              "TIMESTAMP '2026-01-05 00:15' AS snapshot_time")
    replace_partitions(con, SYMBOL, DAY, [
        ("model.liquidation_heatmap", select + ", 'long' AS side, 1 AS bin_id, 1.0 AS price, 5.0 AS notional_usd", None),
        ("model.heatmap_snapshots", select + ", 1 AS levels, 5.0 AS long_usd, 0.0 AS short_usd", None)])
    with pytest.raises(duckdb.ConstraintException):
        replace_partitions(con, SYMBOL, DAY, [
            ("model.liquidation_heatmap", select + ", 'long' AS side, 2 AS bin_id, 2.0 AS price, 7.0 AS notional_usd",
             None),
            ("model.heatmap_snapshots", select + ", NULL AS levels, 7.0 AS long_usd, 0.0 AS short_usd", None)])
    assert con.execute("SELECT bin_id, notional_usd FROM model.liquidation_heatmap").fetchall() == [(1, 5.0)]
    assert con.execute("SELECT levels, long_usd FROM model.heatmap_snapshots").fetchall() == [(1, 5.0)]
    with pytest.raises(KeyError, match="unknown warehouse table"):
        replace_partitions(con, SYMBOL, DAY, [("model.nope", select, None)])
    assert replace_partition(con, "model.heatmap_snapshots", SYMBOL, DAY, "SELECT * FROM model.heatmap_snapshots "
                             "WHERE false") == 0
    con.close()


def test_latest_falls_back_to_the_scan_when_later_days_predate_the_index(warehouse, tmp_path):
    """Day D+1 written before the index existed (its zones say so): the latest snapshot is D+1's, not D's."""
    path, _ = warehouse
    mixed = tmp_path / "mixed.duckdb"
    with duckdb.connect(str(mixed)) as con:
        con.execute(f"ATTACH '{path}' AS src (READ_ONLY)")
        con.execute("CREATE SCHEMA model")
        con.execute("""CREATE TABLE model.liquidation_heatmap AS SELECT * FROM src.model.liquidation_heatmap UNION ALL
                       SELECT * REPLACE (day + 1 AS day, snapshot_time + INTERVAL 1 DAY AS snapshot_time)
                       FROM src.model.liquidation_heatmap""")
        con.execute("CREATE TABLE model.heatmap_snapshots AS SELECT * FROM src.model.heatmap_snapshots")
        con.execute("""CREATE TABLE model.liquidation_zones AS SELECT symbol, day + 1 AS day, variant,
                       max(snapshot_time) AS as_of FROM src.model.liquidation_heatmap GROUP BY ALL""")
    with cli.connect_read_only(mixed) as con:
        snapshot, day = cli.resolve_snapshot(con, SYMBOL, "hybrid", None)
    assert day == DAY + dt.timedelta(days=1) and snapshot.date() in (day, day + dt.timedelta(days=1))
