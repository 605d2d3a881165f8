"""The heatmap and zones assets write each partition's answer files (docs/answer-files.md) beside the warehouse,
and the files say what the tables say: every variant's levels and mark at an instant, and the zones."""

from __future__ import annotations

import datetime as dt

import duckdb

from liq_pipeline.warehouse import answer_files as af
from liq_pipeline.warehouse.readers import snapshots
from liq_pipeline.warehouse.readonly import zone_rows
from liq_pipeline_tests.support.shared_market import FIRST, LAST, SYMBOL


def test_every_materialized_partition_has_answer_files_equal_to_its_rows(shared_market):
    folder = af.folder_for(shared_market.db)
    days = [FIRST + dt.timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
    with duckdb.connect(str(shared_market.db), read_only=True) as con:
        stored = sorted(d for (d,) in con.execute("SELECT DISTINCT day FROM model.liquidation_heatmap").fetchall())
        assert af.days_with(folder, SYMBOL, af.HEATMAP_SUFFIX) == stored and stored
        assert af.days_with(folder, SYMBOL, af.ZONES_SUFFIX) == sorted(
            d for (d,) in con.execute("SELECT DISTINCT day FROM model.liquidation_zones").fetchall())
        variants = [v for (v,) in con.execute("SELECT DISTINCT variant FROM model.liquidation_heatmap").fetchall()]
        for day in (d for d in days if d in stored):
            for variant in variants:
                for at in (dt.datetime.combine(day, dt.time(6, 7)), dt.datetime.combine(day + dt.timedelta(days=1),
                                                                                          dt.time())):
                    answer = af.heatmap_answer(folder, SYMBOL, variant, at)
                    snapshot, snap_day = snapshots.resolve_snapshot(con, SYMBOL, variant, at)
                    assert (answer.snapshot, answer.day) == (snapshot, snap_day)
                    rows = snapshots.snapshot_levels(con, SYMBOL, variant, snapshot, snap_day)
                    assert sorted(answer.levels) == sorted(rows) and rows  # (ties in price: either order)
                    assert [r[2] for r in answer.levels] == sorted(r[2] for r in rows)
                    assert (answer.mark, answer.mark_table) == snapshots.mark_at(con, SYMBOL, snapshot)
                    assert answer.mark is not None
                zones = af.zones_answer(folder, SYMBOL, variant, day)
                assert zones == (day, zone_rows(con, SYMBOL, day, variant, 10**6))
