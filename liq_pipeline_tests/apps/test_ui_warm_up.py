"""The demo's warm-up days are recorded as warm-up, not shown as "Missing" (issue 27, 4b)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from liq_pipeline import partitions
from liq_pipeline.apps.warm_up import record_warm_up
from liq_pipeline.definitions import defs

START = partitions.daily.start.date()
FIRST_MODEL = START + dt.timedelta(days=7)  # the demo's WARM_UP_DAYS


def test_warm_up_days_are_recorded_with_what_they_are():
    instance = dg.DagsterInstance.ephemeral()
    n = record_warm_up(defs, instance, ("BTCUSDT", "ETHUSDT"), START, FIRST_MODEL)
    levels = instance.get_materialized_partitions(dg.AssetKey("liquidation_levels"))
    heatmap = instance.get_materialized_partitions(dg.AssetKey("liquidation_heatmap"))
    assert levels == {str(partitions.key_for(s, START + dt.timedelta(days=i))) for s in ("BTCUSDT", "ETHUSDT") for i in range(7)}
    assert len(heatmap) == 2 * 8  # the heatmap starts a day after the model: it needs the model's D-1
    assert str(partitions.key_for("BTCUSDT", FIRST_MODEL)) in heatmap
    assert str(partitions.key_for("BTCUSDT", FIRST_MODEL)) not in levels  # the first modelled day is computed
    # The daily profiles and the raw data are computed from the first day: nothing reported for them.
    assert not instance.get_materialized_partitions(dg.AssetKey("volume_profile_daily"))
    assert not instance.get_materialized_partitions(dg.AssetKey("agg_trades"))
    event = instance.get_latest_materialization_event(dg.AssetKey("liquidation_zones")).asset_materialization
    assert event.metadata["warm_up"].value.startswith("warm-up: no map yet")
    assert event.metadata["rows"].value == 0
    model_assets = defs.resolve_job_def("model_job").asset_layer.executable_asset_keys
    heatmap_assets = defs.resolve_job_def("heatmap_job").asset_layer.executable_asset_keys
    assert n == 2 * (7 * len(model_assets) + 8 * len(heatmap_assets))


def test_a_demo_with_no_warm_up_records_nothing():
    instance = dg.DagsterInstance.ephemeral()
    assert record_warm_up(defs, instance, ("BTCUSDT",), START, START + dt.timedelta(days=-1)) == 0
    assert not instance.get_materialized_partitions(dg.AssetKey("liquidation_heatmap"))
