"""The whole Definitions object loads, and its shape (assets, groups, checks, jobs) is what users rely on."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from liq_pipeline.definitions import defs

EXPECTED_ASSETS = {
    "raw": {"agg_trades", "klines", "mark_price_klines", "open_interest", "funding_rates"},
    "truth": {"true_positions", "true_liquidations"},
    "model": {"volume_profile_daily", "volume_profile_baseline", "ofi_bins", "position_distribution", "liquidation_levels"},
    "heatmap": {"liquidation_heatmap", "liquidation_zones"},
}


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_every_pipeline_asset_is_defined_in_its_group():
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    for group, names in EXPECTED_ASSETS.items():
        for name in names:
            assert name in specs, f"missing asset {name}"
            assert specs[name].group_name == group


def test_partitioned_assets_use_symbol_by_day():
    graph = defs.resolve_asset_graph()
    for names in EXPECTED_ASSETS.values():
        for name in names:
            pdef = graph.get(dg.AssetKey(name)).partitions_def
            assert isinstance(pdef, dg.MultiPartitionsDefinition)
            assert {d.name for d in pdef.partitions_defs} == {"date", "symbol"}


def test_raw_data_quality_checks_are_declared():
    check_names = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"agg_trade_ids_continuous_BTCUSDT", "open_interest_sampled_every_5m_BTCUSDT", "funding_settlements_match_interval_BTCUSDT"} <= check_names


def test_heatmap_and_flow_book_depend_on_their_own_previous_day():
    """Day D starts from D−1's heatmap end state and D−1's flow book: the graph says so, so Dagster orders
    backfills day after day and shows D as stale when D−1 is re-materialized after it."""
    graph = defs.resolve_asset_graph()
    for name in ("liquidation_heatmap", "flow_book"):
        key = dg.AssetKey(name)
        parents = graph.get_parents_partitions(key, dg.MultiPartitionKey({"date": "2026-01-10", "symbol": "BTCUSDT"}))
        own = {p.partition_key for p in parents.parent_partitions if p.asset_key == key}
        assert own == {dg.MultiPartitionKey({"date": "2026-01-09", "symbol": "BTCUSDT"})}, name


def test_every_check_has_a_description():
    """No check shows "No description provided" in the UI."""
    undocumented = [str(key) for a in defs.assets for key in getattr(a, "check_keys", ())
                    if not (a.get_spec_for_check_key(key).description or "").strip()]
    undocumented += [str(key) for c in defs.asset_checks for key in c.check_keys
                     if not (c.get_spec_for_check_key(key).description or "").strip()]
    assert undocumented == []


def test_in_process_runs_are_filed_under_the_code_location_of_make_ui():
    """The demo executes its stages in process; the tag files them where the job's Runs tab and the Overview
    look (runs of the same job launched from the UI carry the same label)."""
    import yaml
    from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

    from liq_pipeline import schedules

    workspace = yaml.safe_load((Path(__file__).parents[2] / "workspace.yaml").read_text())
    location = workspace["load_from"][0]["python_module"]["location_name"]
    assert schedules.code_location_tags() == {REPOSITORY_LABEL_TAG: f"{SINGLETON_REPOSITORY_NAME}@{location}"}


def test_zones_follow_a_heatmap_backfill_by_themselves():
    """Backfilling liquidation_heatmap alone (from its asset page) must not leave liquidation_zones stale:
    the zones are eager on their heatmap, which the automation sensor of `make ui` evaluates."""
    import datetime as dt

    from liq_pipeline import partitions

    zones = dg.AssetKey("liquidation_zones")
    spec = next(s for a in defs.assets for s in a.specs if s.key == zones)
    assert spec.automation_condition is not None
    key = partitions.key_for("BTCUSDT", partitions.daily.start.date() + dt.timedelta(days=1))
    other = partitions.key_for("BTCUSDT", partitions.daily.start.date() + dt.timedelta(days=2))
    instance = dg.DagsterInstance.ephemeral()
    for asset in ("liquidation_heatmap", "liquidation_zones"):  # both materialized (as a job or the demo does)
        for k in (key, other):
            instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=k))
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=dg.AssetSelection.assets(zones))
    # Then the heatmap of one day alone, as a backfill from its asset page: that day's zones are requested.
    instance.report_runless_asset_event(dg.AssetMaterialization("liquidation_heatmap", partition=key))
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor,
                                               asset_selection=dg.AssetSelection.assets(zones))
    assert result.get_requested_partitions(zones) == {key}


def test_an_in_process_run_gets_the_origin_overview_needs():
    """Overview's timeline draws only runs with a code-location origin; the demo gives its in-process runs
    the one a UI launch records (same repository label as the tag, the job's name)."""
    from liq_pipeline import schedules

    @dg.op
    def one():
        return 1

    @dg.job
    def tiny():
        one()

    instance = dg.DagsterInstance.ephemeral()
    result = tiny.execute_in_process(instance=instance, tags=schedules.code_location_tags())
    assert instance.get_run_by_id(result.run_id).remote_job_origin is None  # what execute_in_process records
    schedules.file_under_code_location(instance, result.run_id, "tiny")
    run = instance.get_run_by_id(result.run_id)
    assert run.remote_job_origin.job_name == "tiny"
    assert run.remote_job_origin.repository_origin.get_label() == schedules.REPOSITORY_LABEL
    assert run.remote_job_origin.location_name == schedules.CODE_LOCATION
    assert run.tags[".dagster/repository"] == schedules.REPOSITORY_LABEL


def test_a_demo_stage_is_filed_under_its_job_in_the_code_location(capsys):
    from liq_pipeline import schedules
    from liq_pipeline.apps.demo import run_stage

    @dg.op
    def one():
        return 1

    @dg.job
    def stage_job():
        one()

    instance = dg.DagsterInstance.ephemeral()
    assert run_stage(stage_job, instance, "stage", tags={"liq/test": "1"}, poll_s=0.05)
    run = instance.get_runs(limit=1)[0]
    assert run.job_name == "stage_job" and run.tags["liq/test"] == "1"
    assert run.remote_job_origin.repository_origin.get_label() == schedules.REPOSITORY_LABEL
    assert "stage: ok" in capsys.readouterr().out
