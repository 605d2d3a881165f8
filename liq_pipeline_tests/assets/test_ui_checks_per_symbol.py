"""Every check result names its symbol (issue 27, 4d): one check per configured symbol, so a run of one
symbol leaves the other symbol's latest result in place, and each result names the symbol-days it covers
and the failing ones."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from dagster_duckdb import DuckDBResource

from liq_pipeline.assets import raw
from liq_pipeline.assets.symbol_checks import base_and_symbol, symbols
from liq_pipeline.definitions import defs
from liq_pipeline.market.formats import METRICS_COLUMNS, ArchiveFile
from liq_pipeline.resources import MarketSource
from liq_pipeline_tests.support.mirror_fixture import write_day, write_zip

FIRST = dt.date(2026, 1, 6)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(3)]


def test_every_symbol_day_check_exists_once_per_configured_symbol():
    names = [key.name for key in defs.resolve_asset_graph().asset_check_keys]
    per_symbol = [n for n in names if n != "hybrid_beats_volume_baseline"]  # the monthly report's check
    assert per_symbol and all(base_and_symbol(n)[1] in symbols() for n in per_symbol)
    bases = {base_and_symbol(n)[0] for n in per_symbol}
    assert {"agg_trade_ids_continuous", "oi_is_conserved", "long_ratio_tracks_funding"} <= bases
    assert len(per_symbol) == len(bases) * len(symbols())


def _sparse_metrics(mirror, symbol: str, day: dt.date) -> None:
    """One sample an hour instead of every 5 minutes: open_interest_sampled_every_5m fails (a warning)."""
    start = dt.datetime.combine(day, dt.time())
    rows = [((start + dt.timedelta(hours=h)).strftime("%Y-%m-%d %H:%M:%S"), symbol, 80_000 + h, 7.2e9 + h,
             1.2, 1.5, 1.1, 0.95) for h in range(24)]
    write_zip(mirror, ArchiveFile("metrics", symbol, day), METRICS_COLUMNS, rows)


def test_which_symbol_day_failed_which_check(tmp_path):
    btc, eth = "BTCUSDT", "ETHUSDT"
    assert {btc, eth} <= set(symbols())
    mirror = tmp_path / "mirror"
    for i, day in enumerate(DAYS):
        for symbol in (btc, eth):
            write_day(mirror, symbol, day, n_trades=40, seed=i)
    _sparse_metrics(mirror, eth, DAYS[1])
    resources = {"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")),
                 "market": MarketSource(kind="mirror", mirror_dir=str(mirror), cache_dir=str(tmp_path / "cache"))}
    instance = dg.DagsterInstance.ephemeral()
    both = dg.materialize([raw.open_interest], resources=resources, instance=instance,
                          tags={"dagster/asset_partition_range_start": f"{DAYS[0]}|{btc}",
                                "dagster/asset_partition_range_end": f"{DAYS[-1]}|{eth}"})
    assert both.success
    ev = {e.check_name: e for e in both.get_asset_check_evaluations()}
    assert set(ev) == {f"open_interest_{k}_{s}" for k in ("sampled_every_5m", "not_forward_filled") for s in (btc, eth)}
    sampled_eth, sampled_btc = ev[f"open_interest_sampled_every_5m_{eth}"], ev[f"open_interest_sampled_every_5m_{btc}"]
    assert not sampled_eth.passed and sampled_btc.passed
    assert sampled_eth.metadata["symbol_days"].value == f"{eth} {DAYS[0]}…{DAYS[-1]} (3 days)"
    assert sampled_eth.metadata["failing_days"].value == f"{eth} {DAYS[1]}"
    assert sampled_btc.metadata["failing_days"].value == "" and sampled_btc.metadata["symbol"].value == btc
    assert f"{eth} {DAYS[1]}" in sampled_eth.description

    # A later run of BTCUSDT alone: BTCUSDT's checks get a new result, ETHUSDT's failure stays the latest.
    again = dg.materialize([raw.open_interest], resources=resources, instance=instance,
                           partition_key=dg.MultiPartitionKey({"date": DAYS[-1].isoformat(), "symbol": btc}))
    assert {e.check_name for e in again.get_asset_check_evaluations()} == {
        f"open_interest_sampled_every_5m_{btc}", f"open_interest_not_forward_filled_{btc}"}
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    evaluated = {Status.SUCCEEDED, Status.FAILED}
    history = {s: instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("open_interest"), f"open_interest_sampled_every_5m_{s}"), limit=5, status=evaluated)
        for s in (btc, eth)}
    assert [r.run_id for r in history[btc]] == [again.run_id, both.run_id]
    # ETHUSDT's check was evaluated by the first run only: its latest result is still the failure of ETHUSDT's day.
    assert [(r.run_id, r.status) for r in history[eth]] == [(both.run_id, Status.FAILED)]
    assert history[eth][0].event.asset_check_evaluation.metadata["failing_days"].value == f"{eth} {DAYS[1]}"


def test_a_raw_check_launched_without_its_asset_says_what_to_do(tmp_path):
    resources = {"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")),
                 "market": MarketSource(kind="mirror", mirror_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))}
    check = dg.AssetCheckKey(dg.AssetKey("funding_rates"), "funding_settlements_match_interval_BTCUSDT")
    job = dg.define_asset_job("check_alone", selection=dg.AssetSelection.checks(check))
    job = dg.Definitions(assets=[raw.funding_rates], jobs=[job], resources=resources).resolve_job_def("check_alone")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, tags={
        "dagster/partition": f"{FIRST}|BTCUSDT", "dagster/partition/date": FIRST.isoformat(),
        "dagster/partition/symbol": "BTCUSDT"})
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "computed while it is materialized: materialize funding_rates" in str(failure.step_failure_data.user_failure_data.description)


def test_a_run_of_one_symbol_plans_only_that_symbols_checks(tmp_path):
    """The daily schedule's runs and the demo's stages (one symbol each) select their symbol's checks, so the
    other symbol's checks do not read "not executed" after them."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    from liq_pipeline import schedules
    from liq_pipeline.assets.symbol_checks import job_for_symbol

    tick = schedules.daily_refresh_schedule.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 1, 10, 0, 30, tzinfo=dt.UTC),
        resources={"market": MarketSource(kind="simulated")}, repository_def=defs.get_repository_def()))
    for request in tick.run_requests:
        symbol = request.partition_key.keys_by_dimension["symbol"]
        assert request.asset_check_keys and {base_and_symbol(k.name)[1] for k in request.asset_check_keys} == {symbol}
        assert set(request.asset_selection) == set(defs.resolve_job_def("daily_refresh_job").asset_layer.selected_asset_keys)

    mirror = tmp_path / "mirror"
    write_day(mirror, "BTCUSDT", FIRST, n_trades=40)
    resources = {"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")),
                 "market": MarketSource(kind="mirror", mirror_dir=str(mirror), cache_dir=str(tmp_path / "cache"))}
    job = dg.Definitions(assets=[raw.open_interest], resources=resources,
                         jobs=[dg.define_asset_job("oi_job", selection=["open_interest"])]).resolve_job_def("oi_job")
    instance = dg.DagsterInstance.ephemeral()
    result = job_for_symbol(job, "BTCUSDT").execute_in_process(
        instance=instance, partition_key=dg.MultiPartitionKey({"date": FIRST.isoformat(), "symbol": "BTCUSDT"}))
    assert result.success and result.dagster_run.job_name == "oi_job"
    eth = dg.AssetCheckKey(dg.AssetKey("open_interest"), "open_interest_sampled_every_5m_ETHUSDT")
    assert instance.event_log_storage.get_asset_check_execution_history(eth, limit=5) == []
    btc = dg.AssetCheckKey(dg.AssetKey("open_interest"), "open_interest_sampled_every_5m_BTCUSDT")
    assert [r.status for r in instance.event_log_storage.get_asset_check_execution_history(btc, limit=5)] == [Status.SUCCEEDED]
