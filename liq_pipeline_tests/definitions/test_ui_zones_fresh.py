"""A heatmap backfill keeps its zones fresh (issue 27, 4e): the zones' automation condition requests every
backfilled day, and the sensor that evaluates it runs by default (Dagster's implicit one starts stopped)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from liq_pipeline import partitions, schedules
from liq_pipeline.definitions import defs

ZONES = dg.AssetKey("liquidation_zones")


def test_the_zones_sensor_runs_by_default_and_is_the_only_automation_sensor():
    sensors = {s.name: s for s in defs.get_repository_def().sensor_defs}
    sensor = sensors["zones_after_heatmap_sensor"]
    assert sensor is schedules.zones_after_heatmap_sensor
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.asset_selection.resolve(defs.resolve_asset_graph()) == {ZONES}
    # No implicit default_automation_condition_sensor (stopped by default) beside it.
    assert "default_automation_condition_sensor" not in sensors


def test_a_three_day_heatmap_backfill_requests_the_zones_of_each_day_once():
    first = partitions.daily.start.date() + dt.timedelta(days=1)
    keys = [partitions.key_for("BTCUSDT", first + dt.timedelta(days=i)) for i in range(4)]
    instance = dg.DagsterInstance.ephemeral()
    for asset in ("liquidation_heatmap", "liquidation_zones"):  # all days up to date, as after a job run
        for key in keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=key))
    selection = dg.AssetSelection.assets(ZONES)
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
    assert before.get_requested_partitions(ZONES) == set()
    for key in keys[:3]:  # the heatmap alone, three days, as an asset-page backfill
        instance.report_runless_asset_event(dg.AssetMaterialization("liquidation_heatmap", partition=key))
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor, asset_selection=selection)
    assert after.get_requested_partitions(ZONES) == set(keys[:3])
    for key in keys[:3]:  # the requested runs materialize the zones: nothing more is requested
        instance.report_runless_asset_event(dg.AssetMaterialization("liquidation_zones", partition=key))
    again = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=after.cursor, asset_selection=selection)
    assert again.get_requested_partitions(ZONES) == set()
