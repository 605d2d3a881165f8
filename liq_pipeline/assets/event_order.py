"""The newest partition of a range run is the asset's latest materialization.

A single-run backfill materializes many symbol-days in one step, and Dagster 1.13 records one
materialization per partition in the iteration order of a Python set (a `DefaultPartitionsSubset`), so
the last event, which the asset page shows as "Latest materialization", was a random day of the range.
Dagster offers no way to order those events, and an asset that skips its output to log its own would
skip its downstream steps in the same run. So a range run records the materializations of its newest
day once more after Dagster's, the same events (metadata, tags) read back from the run, sorted by
symbol: the asset's latest event is then the newest day of the range (the last symbol of it). Each
partition of that day lists two materializations of the same run; the other days one.
"""

import functools

import dagster as dg
from dagster._core.events import DagsterEventType


def _sort_key(partition: str) -> tuple[str, ...]:
    """(date, symbol) order for a "date|symbol" key; any other key sorts as itself."""
    return tuple(partition.split("|"))


def newest_day_again(context: dg.AssetExecutionContext) -> list[dg.AssetMaterialization]:
    """This run's materializations of the asset's newest day, sorted by partition, ready to be logged
    again; nothing for a run of one partition (its only event is already the latest)."""
    if not context.has_partition_key_range or len(context.partition_keys) < 2:
        return []
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    mine = [r.event_log_entry.asset_materialization for r in records
            if r.event_log_entry.asset_materialization is not None
            and r.event_log_entry.asset_materialization.asset_key == context.asset_key
            and r.event_log_entry.asset_materialization.partition is not None]
    if not mine:
        return []
    newest = max(_sort_key(m.partition)[0] for m in mine)
    latest = {m.partition: m for m in mine if _sort_key(m.partition)[0] == newest}  # one per partition
    return [latest[p] for p in sorted(latest, key=_sort_key)]


def newest_partition_last(asset_fn):
    """Decorate an asset function that returns a MaterializeResult: after Dagster has recorded the
    run's materializations, the newest day's are recorded again (see the module docstring). The asset
    becomes a generator: invoked directly (a test), it yields its MaterializeResult."""
    @functools.wraps(asset_fn)
    def wrapper(context: dg.AssetExecutionContext, *args, **kwargs):
        yield asset_fn(context, *args, **kwargs)
        for event in newest_day_again(context):
            context.log_event(event)
    return wrapper

