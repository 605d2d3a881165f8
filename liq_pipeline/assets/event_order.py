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


def _sort_key(partition: str) -> tuple[str, ...]:
    """(date, symbol) order for a "date|symbol" key; any other key sorts as itself."""
    return tuple(partition.split("|"))


def newest_day_again(context: dg.AssetExecutionContext) -> list[dg.AssetMaterialization]:
    """This run's materializations of the asset's newest day, sorted by partition, ready to be logged
    again; nothing for a run of one partition (its only event is already the latest). Only the newest day's
    records are read back (the asset index by partition), not every event of the run with its pictures."""
    if not context.has_partition_key_range or len(context.partition_keys) < 2:
        return []
    keys = [str(k) for k in context.partition_keys]
    newest = max(_sort_key(k)[0] for k in keys)
    wanted = [k for k in keys if _sort_key(k)[0] == newest]
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=wanted),
        limit=4 * len(wanted), ascending=False).records
    latest: dict[str, dg.AssetMaterialization] = {}
    for r in records:  # newest first: the first of each partition is the one to repeat
        m = r.asset_materialization
        if r.run_id == context.run.run_id and m is not None and m.partition is not None:
            latest.setdefault(m.partition, m)
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

