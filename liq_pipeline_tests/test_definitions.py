"""The whole Definitions object loads, and its shape (assets, groups, checks, jobs) is what users rely on."""

from __future__ import annotations

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
    assert {"agg_trade_ids_continuous", "open_interest_sampled_every_5m", "funding_settlements_match_interval"} <= check_names


def test_heatmap_and_flow_book_depend_on_their_own_previous_day():
    """Day D starts from D−1's heatmap end state and D−1's flow book: the graph says so, so Dagster orders
    backfills day after day and shows D as stale when D−1 is re-materialized after it."""
    graph = defs.resolve_asset_graph()
    for name in ("liquidation_heatmap", "flow_book"):
        key = dg.AssetKey(name)
        parents = graph.get_parents_partitions(key, dg.MultiPartitionKey({"date": "2026-01-10", "symbol": "BTCUSDT"}))
        own = {p.partition_key for p in parents.parent_partitions if p.asset_key == key}
        assert own == {dg.MultiPartitionKey({"date": "2026-01-09", "symbol": "BTCUSDT"})}, name
