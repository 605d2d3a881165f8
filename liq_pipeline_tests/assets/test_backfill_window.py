"""A backfill never writes a day computed from an incomplete window (docs/development.md#time).

Dagster 1.13 turns a single-run backfill of N symbols × M ≤ N days into one run per day (both symbols),
and lets the window asset share those runs with its window's days: the run of day 2 can go first. These
tests build the run requests Dagster's backfill daemon builds, execute them in that order on an
in-process instance, and check that day 2 is never written from day 1's absence (on main it was: one day
in the window, other numbers), that re-running it once day 1 is there gives the right window, and that
the guard names the missing days and writes nothing.
"""

# No `from __future__ import annotations`: Dagster checks the `context` annotation as an object.

import datetime as dt

import dagster as dg
import duckdb
import pytest
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.automation_tick_evaluation_context import (
    build_run_requests_with_backfill_policies,
)
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster_duckdb import DuckDBResource

from liq_pipeline import partitions
from liq_pipeline.assets import model, raw, window_guard
from liq_pipeline.resources import MarketSource
from liq_pipeline_tests.support.mirror_fixture import write_day

SYMBOLS = ("BTCUSDT", "ETHUSDT")
DAY1, DAY2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
PRICE = {"BTCUSDT": 90_000.0, "ETHUSDT": 3_000.0}


def _keys(symbols, days) -> list[str]:
    return [str(partitions.key_for(s, d)) for s in symbols for d in days]


def _ranges(assets, symbols, days) -> list[tuple[str, str]]:
    """The (start, end) of every run Dagster's backfill daemon requests for these assets × keys in one tick."""
    graph = AssetGraph.from_assets(assets)
    wanted = {AssetKeyPartitionKey(a.key, k) for a in assets for k in _keys(symbols, days)}
    requests = build_run_requests_with_backfill_policies(wanted, graph, dg.DagsterInstance.ephemeral())
    return sorted((r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
                  for r in requests)


def test_dagster_runs_a_backfill_of_as_many_days_as_symbols_one_run_per_day():
    """The cause: the window asset and its days are requested together, then split along the date."""
    assets = [model.volume_profile_daily, model.volume_profile_baseline]
    assert _ranges(assets, SYMBOLS, [DAY1, DAY2]) == [(f"{d}|BTCUSDT", f"{d}|ETHUSDT") for d in (DAY1, DAY2)]
    three = [DAY1, DAY2, DAY2 + dt.timedelta(days=1)]
    assert _ranges(assets, SYMBOLS, three) == [(f"{DAY1}|{s}", f"{three[-1]}|{s}") for s in SYMBOLS]


@pytest.fixture
def world(tmp_path):
    mirror = tmp_path / "mirror"
    for i, day in enumerate((DAY1, DAY2)):
        for j, symbol in enumerate(SYMBOLS):
            write_day(mirror, symbol, day, n_trades=400, price=PRICE[symbol], seed=10 * i + j)
    resources = {"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")),
                 "market": MarketSource(kind="mirror", mirror_dir=str(mirror), cache_dir=str(tmp_path / "cache"))}
    instance = dg.DagsterInstance.ephemeral()
    # The raw days are ingested first (the backfill below covers the model assets).
    for symbol in SYMBOLS:
        done = dg.materialize([raw.agg_trades, raw.klines], resources=resources, instance=instance,
                              tags=_tags(f"{DAY1}|{symbol}", f"{DAY2}|{symbol}"))
        assert done.success
    return {"resources": resources, "instance": instance, "db": resources["duckdb"]}


def _tags(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def _baseline(db: DuckDBResource, symbol, day) -> tuple[int, float, int | None]:
    with db.get_connection() as con:
        return con.execute(
            "SELECT count(*), coalesce(sum(notional_usd), 0), max(days_in_window) FROM model.volume_profile_baseline "
            "WHERE symbol = ? AND day = ?", [symbol, day]).fetchone()


def _window_sum(db: DuckDBResource, symbol, days) -> tuple[int, float]:
    with db.get_connection() as con:
        return con.execute("SELECT count(DISTINCT bin_id), sum(notional_usd) FROM model.volume_profile_daily "
                           "WHERE symbol = ? AND day BETWEEN ? AND ?", [symbol, min(days), max(days)]).fetchone()


def test_a_two_by_two_backfill_run_day_two_first_never_writes_an_incomplete_window(world):
    assets = [model.volume_profile_daily, model.volume_profile_baseline]
    runs = _ranges(assets, SYMBOLS, [DAY1, DAY2])
    day2_first = sorted(runs, reverse=True)  # a creation order Dagster can give (its ranges come from a set)
    results = [dg.materialize(assets, resources=world["resources"], instance=world["instance"],
                              tags=_tags(*r), raise_on_error=False) for r in day2_first]
    for symbol in SYMBOLS:  # never a day-2 baseline of one day (main wrote one: days_in_window 1)
        bins, _, days = _baseline(world["db"], symbol, DAY2)
        assert bins == 0 or days == 2, (symbol, bins, days)
    # Day 2's run stops at the window, naming day 1 whose raw data is there; it writes no day-2 baseline.
    assert not results[0].success and results[1].success
    failure = next(e for e in results[0].all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.error.message
    assert "model.volume_profile_daily has no rows for 2026-01-01" in message, message
    assert "raw data ingested for 2026-01-01" in message and "Nothing written" in message, message
    assert all(_baseline(world["db"], symbol, DAY2)[0] == 0 for symbol in SYMBOLS)
    # Re-executed once day 1 is written (what the instance's run retries do), day 2 holds both days.
    again = dg.materialize(assets, resources=world["resources"], instance=world["instance"], tags=_tags(*runs[1]))
    assert again.success
    for symbol in SYMBOLS:
        bins, usd, days = _baseline(world["db"], symbol, DAY2)
        want_bins, want_usd = _window_sum(world["db"], symbol, [DAY1, DAY2])
        assert days == 2 and bins == want_bins and usd == pytest.approx(want_usd, rel=1e-12)


def test_the_first_day_and_a_gap_of_the_data_are_legitimately_short_windows(world):
    """No raw data and no run writing it: the window is shorter, nothing fails."""
    assets = [model.volume_profile_daily, model.volume_profile_baseline]
    with world["db"].get_connection() as con:  # day 1 of BTCUSDT becomes a gap of the data
        for table in ("raw.agg_trades", "raw.klines"):
            con.execute(f"DELETE FROM {table} WHERE symbol = 'BTCUSDT' AND day = ?", [DAY1])
    assert dg.materialize(assets, resources=world["resources"], instance=world["instance"],
                          tags=_tags(f"{DAY2}|BTCUSDT", f"{DAY2}|BTCUSDT")).success
    assert _baseline(world["db"], "BTCUSDT", DAY2)[2] == 1


# ----------------------------------------------------------------------------------------- the guard
def _context(instance: dg.DagsterInstance):
    return dg.build_asset_context(instance=instance)


def _raw_day(con, symbol, day):
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute("CREATE TABLE IF NOT EXISTS raw.klines (symbol VARCHAR, day DATE)")
    con.execute("INSERT INTO raw.klines VALUES (?, ?)", [symbol, day])


def test_the_guard_names_a_window_day_whose_raw_data_is_there_and_lets_the_book_start_cold(tmp_path):
    con = duckdb.connect(str(tmp_path / "g.duckdb"))
    _raw_day(con, "BTCUSDT", DAY1)
    con.execute("CREATE SCHEMA model")
    con.execute("CREATE TABLE model.volume_profile_daily (symbol VARCHAR, day DATE)")
    con.execute("CREATE TABLE model.flow_parameters (symbol VARCHAR, day DATE)")
    daily = dict(asset="volume_profile_daily", table="model.volume_profile_daily", day=DAY2, days=[DAY1])
    with dg.DagsterInstance.ephemeral() as instance:
        with pytest.raises(dg.Failure, match=r"BTCUSDT 2026-01-02: model.volume_profile_daily has no rows for "
                                             r"2026-01-01, .*\(raw data ingested for 2026-01-01\)"):
            window_guard.require_earlier_days(_context(instance), con, symbol="BTCUSDT", **daily)
        # Absent without raw data (a gap, before the history), or present: no error.
        window_guard.require_earlier_days(_context(instance), con, symbol="ETHUSDT", **daily)
        con.execute("INSERT INTO model.volume_profile_daily VALUES ('BTCUSDT', ?)", [DAY1])
        window_guard.require_earlier_days(_context(instance), con, symbol="BTCUSDT", **daily)
        # The book of D−1 nobody computes is a cold start (how the model's history begins), raw data or not.
        window_guard.require_earlier_days(_context(instance), con, asset="flow_book", table="model.flow_parameters",
                                          symbol="BTCUSDT", day=DAY2, days=[DAY1], raw_days=False)
    con.close()


@pytest.mark.parametrize(("asset", "table", "raw_days"), [("volume_profile_daily", "model.volume_profile_daily", True),
                                                         ("flow_book", "model.flow_parameters", False)])
def test_the_guard_sees_a_day_another_unfinished_run_plans_to_write(tmp_path, asset, table, raw_days):
    """The concurrent case: day 1 is not there yet (nor its raw data), but another run plans it."""
    con = duckdb.connect(str(tmp_path / "g.duckdb"))
    con.execute("CREATE SCHEMA model")
    con.execute(f"CREATE TABLE {table} (symbol VARCHAR, day DATE)")

    @dg.asset(name=asset, partitions_def=partitions.symbol_day)
    def stub() -> None:
        return None

    job = dg.Definitions(assets=[stub], jobs=[dg.define_asset_job("j", selection=[stub])]).resolve_job_def("j")
    guard = dict(asset=asset, table=table, symbol="ETHUSDT", day=DAY2, days=[DAY1], raw_days=raw_days)
    with dg.DagsterInstance.ephemeral() as instance:
        # Day 1 of both symbols in one run, as Dagster groups a 2 x 2 backfill.
        run = instance.create_run_for_job(job, tags=_tags(f"{DAY1}|BTCUSDT", f"{DAY1}|ETHUSDT"),
                                          asset_selection=frozenset({stub.key}))
        assert run.status == dg.DagsterRunStatus.NOT_STARTED
        pending = window_guard.planned_elsewhere(_context(instance), asset, "ETHUSDT", [DAY1])
        assert pending == {DAY1: (run.run_id, dg.DagsterRunStatus.NOT_STARTED)}
        with pytest.raises(dg.Failure, match=rf"ETHUSDT 2026-01-02: {table} has no rows for 2026-01-01, .*"
                                             rf"being written by run\(s\) {run.run_id}"):
            window_guard.require_earlier_days(_context(instance), con, **guard)
        # Once that run is running, the step waits for it and retries instead of failing.
        instance.handle_run_event(run.run_id, dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name))
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
        with pytest.raises(dg.RetryRequested):
            window_guard.require_earlier_days(_context(instance), con, **guard)
    con.close()
