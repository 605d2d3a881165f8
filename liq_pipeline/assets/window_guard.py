"""Refuse to compute a day from an incomplete past: the guard of every asset that reads earlier days.

`volume_profile_baseline` sums the daily profiles of its window and `flow_book` evolves the book of D−1. A
Dagster 1.13 backfill can run day D before those earlier days exist: it groups the (symbol, day) keys of a
single-run backfill into one run per key of the dimension with fewer values (the date on a tie), while
its dependency logic let the window and its days share that request as if it were one run; the runs of
one day each then start at the same time, in no set order (docs/development.md#time). A missing earlier
day is legitimate only as a gap of the data or before the symbol's (or the model's) history; it is an error
when another unfinished run is about to write it, or, for the window, when the day's raw data is there.
The error names the days; while the run writing them is running, the step waits for it and retries.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
from dagster._core.errors import DagsterInvalidPropertyError

from liq_pipeline import partitions
from liq_pipeline.warehouse.readers.raw_day import days_with_rows

#: The raw tables a day's model rows are computed from: rows there mean the derived day should exist.
RAW_DAY_TABLES = ("raw.agg_trades", "raw.klines")
UNFINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED]
#: While another run that is already running writes the missing days, the step waits and retries
#: (at most RETRIES × WAIT_S, 20 minutes): it never holds back a run that could not start without it.
WAIT_S, RETRIES = 20, 60


def earlier_days(first: dt.date, day: dt.date) -> list[dt.date]:
    """The days `first` … day − 1 that are partitions (none before the first partition day)."""
    start = max(first, partitions.daily.start.date())
    return [start + dt.timedelta(days=i) for i in range((day - start).days)]


def planned_elsewhere(context: dg.AssetExecutionContext, asset: str, symbol: str,
                      days: list[dt.date]) -> dict[dt.date, tuple[str, dg.DagsterRunStatus]]:
    """Days of `days` whose `asset` partition of `symbol` another unfinished run plans to write: day →
    (run id, run status), from the runs' planned-materialization events (one per partition or per range)."""
    if not days:
        return {}
    try:
        own = context.run.run_id
    except DagsterInvalidPropertyError:  # an asset invoked directly (a test) has no run
        own = None
    wanted = {str(partitions.key_for(symbol, d)): d for d in days}
    key = dg.AssetKey(asset)
    found: dict[dt.date, tuple[str, dg.DagsterRunStatus]] = {}
    for run in context.instance.get_runs(dg.RunsFilter(statuses=UNFINISHED)):
        if run.run_id == own or (run.asset_selection is not None and key not in run.asset_selection):
            continue
        for record in context.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED):
            planned = record.dagster_event.event_specific_data
            if planned.asset_key != key:
                continue
            keys = ([planned.partition] if planned.partition is not None else
                    list(planned.partitions_subset.get_partition_keys()) if planned.partitions_subset is not None
                    else list(wanted))  # an unpartitioned plan of a partitioned asset: it may write any day
            for k in keys:
                if str(k) in wanted:
                    found.setdefault(wanted[str(k)], (run.run_id, run.status))
    return found


def require_earlier_days(context: dg.AssetExecutionContext, con: duckdb.DuckDBPyConnection, *, asset: str,
                         table: str, symbol: str, day: dt.date, days: list[dt.date], raw_days: bool = True) -> None:
    """Raise unless every day of `days` that should have rows of `table` (`asset`'s table) has them.

    A day should have them when another unfinished run plans `asset` for it, or (`raw_days`) when its raw
    data is there (RAW_DAY_TABLES). Nothing is read from the instance when every day is present (the common
    case).
    Raises RetryRequested when every such day is being written by a run that is already running (the step
    waits for it), else a Failure naming the days, why they should exist and what to do.
    """
    missing = sorted(set(days) - days_with_rows(con, (table,), symbol, days))
    if not missing:
        return
    ingested = days_with_rows(con, RAW_DAY_TABLES, symbol, missing) if raw_days else set()
    pending = planned_elsewhere(context, asset, symbol, missing)
    due = sorted(ingested | set(pending))
    if not due:
        return  # gaps of the data, or before the symbol's history: the window is legitimately shorter
    listed = ", ".join(str(d) for d in due)
    runs = sorted({run_id for run_id, _ in pending.values()})
    message = (f"{symbol} {day}: {table} has no rows for {listed}, which this day reads"
               + (f" (raw data ingested for {', '.join(str(d) for d in sorted(ingested))})" if ingested else "")
               + (f"; being written by run(s) {', '.join(runs)}" if runs else "")
               + f". Nothing written for {symbol} {day}: materialize {asset} for those days first, then "
               "re-execute this run (the instance's run retries re-run it on their own)")
    running = all(d in pending and pending[d][1] == dg.DagsterRunStatus.STARTED for d in due)
    if running:
        context.log.warning(message + f"; waiting {WAIT_S} s for run(s) {', '.join(runs)}")
        raise dg.RetryRequested(max_retries=RETRIES, seconds_to_wait=WAIT_S) from dg.Failure(message)
    raise dg.Failure(message, allow_retries=False)
