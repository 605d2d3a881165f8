"""The asset page's "Latest materialization" is the newest partition after a range run (issue 27, 4a).

Dagster records the materializations of a single-run backfill in the order of a Python set; the assets
record the newest day's again at the end (assets/event_order.py), so the asset's latest event is the
newest day whatever that order was.
"""

# No `from __future__ import annotations`: Dagster checks the `context` annotation as an object.

import datetime as dt

import dagster as dg
from dagster_duckdb import DuckDBResource

from liq_pipeline.assets import raw
from liq_pipeline.assets.event_order import newest_partition_last
from liq_pipeline.resources import MarketSource
from liq_pipeline_tests.support.mirror_fixture import write_day

FIRST = dt.date(2026, 1, 3)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(8)]


def _range_tags(first: dt.date, last: dt.date, symbol: str = "BTCUSDT") -> dict[str, str]:
    return {"dagster/asset_partition_range_start": f"{first.isoformat()}|{symbol}",
            "dagster/asset_partition_range_end": f"{last.isoformat()}|{symbol}"}


def test_a_range_run_of_a_real_asset_ends_with_its_newest_day(tmp_path):
    mirror = tmp_path / "mirror"
    for i, day in enumerate(DAYS):
        write_day(mirror, "BTCUSDT", day, n_trades=50, seed=i)
    resources = {"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")),
                 "market": MarketSource(kind="mirror", mirror_dir=str(mirror), cache_dir=str(tmp_path / "cache"))}
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([raw.klines], resources=resources, instance=instance, tags=_range_tags(DAYS[0], DAYS[-1]))
    assert result.success
    newest = f"{DAYS[-1].isoformat()}|BTCUSDT"
    event = instance.get_latest_materialization_event(dg.AssetKey("klines"))
    assert event.asset_materialization.partition == newest
    # What the asset page reads (assetMaterializations(limit: 1)): the newest storage id, with that day's metadata.
    latest = instance.fetch_materializations(dg.AssetKey("klines"), limit=1, ascending=False).records[0]
    assert latest.partition_key == newest
    assert f"| BTCUSDT | {DAYS[-1]} |" in latest.asset_materialization.metadata["partitions"].value
    # Every day of the range is materialized; only the newest is recorded twice.
    partitions = [m.partition for m in result.asset_materializations_for_node("klines")]
    assert sorted(set(partitions)) == [f"{d.isoformat()}|BTCUSDT" for d in DAYS]
    assert len(partitions) == len(DAYS) + 1 and partitions[-1] == newest


def test_several_symbols_end_with_the_newest_day_sorted_by_symbol_and_one_partition_runs_are_untouched():
    daily = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-02-01")
    symbol_day = dg.MultiPartitionsDefinition({"date": daily, "symbol": dg.StaticPartitionsDefinition(["BTCUSDT", "ETHUSDT"])})

    @dg.asset(partitions_def=symbol_day, backfill_policy=dg.BackfillPolicy.single_run())
    @newest_partition_last
    def tiny(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        for key in context.partition_keys:
            context.add_asset_metadata({"day": str(key)}, partition_key=key)
        return dg.MaterializeResult()

    @dg.asset(partitions_def=symbol_day, deps=[tiny], backfill_policy=dg.BackfillPolicy.single_run())
    def downstream(context: dg.AssetExecutionContext) -> None:
        return None

    instance = dg.DagsterInstance.ephemeral()
    # The whole date × symbol rectangle of 2026-01-02 … 2026-01-10.
    keys = [dg.MultiPartitionKey({"date": f"2026-01-{d:02d}", "symbol": s}) for d in range(2, 11) for s in ("BTCUSDT", "ETHUSDT")]
    result = dg.materialize([tiny, downstream], instance=instance,
                            tags={"dagster/asset_partition_range_start": "2026-01-02|BTCUSDT",
                                  "dagster/asset_partition_range_end": "2026-01-10|ETHUSDT"})
    assert result.success
    assert len(result.asset_materializations_for_node("downstream")) == len(keys)  # the downstream step ran
    tail = [m.partition for m in result.asset_materializations_for_node("tiny")][-2:]
    assert tail == ["2026-01-10|BTCUSDT", "2026-01-10|ETHUSDT"]
    assert instance.get_latest_materialization_event(dg.AssetKey("tiny")).asset_materialization.metadata["day"].value \
        == "2026-01-10|ETHUSDT"
    one = dg.materialize([tiny], instance=instance, partition_key=keys[0])
    assert [m.partition for m in one.asset_materializations_for_node("tiny")] == [keys[0]]
