"""Schedules request the right partitions: yesterday per symbol (today−2 for the Binance archive, never later),
and last month's validation report on the 1st; the jobs select what they promise."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from dagster_duckdb import DuckDBResource

from liq_pipeline import partitions, schedules
from liq_pipeline.assets import validation
from liq_pipeline.resources import MarketSource


def _stub(name: str, group: str):
    @dg.asset(name=name, group_name=group, partitions_def=partitions.symbol_day)
    def _a() -> None:
        return None

    return _a


def _defs(tmp_dir: str = ".") -> dg.Definitions:
    """Stand-ins for the pipeline assets of each group, plus the real report, checks, jobs and schedules."""
    assets = [_stub("klines", "raw"), _stub("position_distribution", "model"), _stub("liquidation_levels", "model"),
              _stub("liquidation_heatmap", "heatmap"), _stub("true_positions", "truth"), validation.validation_report]
    return dg.Definitions(
        assets=assets,
        asset_checks=[validation.oi_is_conserved, validation.hybrid_beats_volume_baseline],
        jobs=[schedules.daily_refresh_job, schedules.monthly_validation_job],
        schedules=[schedules.daily_refresh_schedule, schedules.monthly_validation_schedule],
        resources={"duckdb": DuckDBResource(database=f"{tmp_dir}/w.duckdb"), "market": MarketSource()},
    )


DEFS = _defs()


def _tick(schedule, when: dt.datetime, kind: str | None = "simulated"):
    resources = {"market": MarketSource(kind=kind)} if kind else None
    ctx = dg.build_schedule_context(scheduled_execution_time=when, resources=resources,
                                    repository_def=DEFS.get_repository_def())
    return schedule.evaluate_tick(ctx)


def test_daily_tick_requests_previous_day_for_every_symbol():
    data = _tick(schedules.daily_refresh_schedule, dt.datetime(2026, 1, 10, 0, 30, tzinfo=dt.UTC))
    keys = [r.partition_key for r in data.run_requests]
    assert keys == [partitions.key_for(s, dt.date(2026, 1, 9)) for s in partitions.symbols.get_partition_keys()]
    assert all(isinstance(k, dg.MultiPartitionKey) for k in keys)
    assert len({r.run_key for r in data.run_requests}) == len(keys)


def test_binance_tick_targets_today_minus_two():
    data = _tick(schedules.daily_refresh_schedule, dt.datetime(2026, 1, 10, 0, 30, tzinfo=dt.UTC), "binance")
    assert {r.partition_key.keys_by_dimension["date"] for r in data.run_requests} == {"2026-01-08"}
    assert all(r.tags["liq/source"] == "binance" for r in data.run_requests)


def test_binance_never_requests_an_unpublished_day():
    # a tick scheduled in the future relative to the real clock: its target day is after today−2
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    data = _tick(schedules.daily_refresh_schedule, future, "binance")
    assert not data.run_requests and "not published" in data.skip_message


def test_unit_rule_for_the_publication_lag():
    today = dt.date(2026, 3, 10)
    assert isinstance(schedules.daily_run_requests(dt.datetime(2026, 3, 11, 0, 30), "binance", today), dg.SkipReason)
    requests = schedules.daily_run_requests(dt.datetime(2026, 3, 10, 0, 30), "binance", today)
    assert {r.partition_key.keys_by_dimension["date"] for r in requests} == {"2026-03-08"}
    # the simulated mirror has yesterday as soon as it exists
    assert schedules.target_day(dt.datetime(2026, 3, 12, 0, 30), "simulated") == dt.date(2026, 3, 11)


def test_days_before_the_first_partition_are_skipped():
    data = _tick(schedules.daily_refresh_schedule, dt.datetime(2025, 6, 1, 0, 30, tzinfo=dt.UTC))
    assert not data.run_requests and "before the first partition" in data.skip_message


def test_monthly_tick_requests_the_month_that_ended():
    data = _tick(schedules.monthly_validation_schedule, dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC), kind=None)
    assert [r.partition_key for r in data.run_requests] == ["2026-02-01"]
    first = _tick(schedules.monthly_validation_schedule, dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.UTC), kind=None)
    assert not first.run_requests


def test_cron_strings():
    assert schedules.daily_refresh_schedule.cron_schedule == "30 0 * * *"
    assert schedules.monthly_validation_schedule.cron_schedule == "0 2 1 * *"
    assert schedules.daily_refresh_schedule.execution_timezone == "UTC"


def test_jobs_select_their_assets_and_checks(tmp_path):
    defs = _defs(str(tmp_path))
    daily = defs.resolve_job_def("daily_refresh_job")
    assert {k.to_user_string() for k in daily.asset_layer.executable_asset_keys} == {
        "klines", "position_distribution", "liquidation_levels", "liquidation_heatmap"}
    assert daily.partitions_def == partitions.symbol_day
    monthly = defs.resolve_job_def("monthly_validation_job")
    assert {k.to_user_string() for k in monthly.asset_layer.executable_asset_keys} == {"validation_report"}
    assert {n.name for n in monthly.graph.node_defs} == {"validation_report", "validation_report_hybrid_beats_volume_baseline"}
    # checks on the model assets run with the daily refresh
    assert "position_distribution_oi_is_conserved" in {n.name for n in daily.graph.node_defs}
