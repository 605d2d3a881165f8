"""Partition definitions shared by every asset: symbol × day, plus monthly for validation reports.

Days run from `LIQ_START_DATE` to yesterday, except for the simulated source: there they end on the last
simulated day (read from the simulation's `simulation.json`), so a fresh demo shows every partition it
materialized and no "missing" ones for days that do not exist. `LIQ_END_DATE` (inclusive, or `yesterday`
for the open-ended range whatever the source) overrides both.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from pathlib import Path

import dagster as dg

from liq_pipeline.config import configured_start_date, configured_symbols, sim_archive_dir


def simulated_last_day(sim_dir: Path) -> dt.date | None:
    """Last day of the simulation in `sim_dir` (from its `simulation.json`), or None when there is none."""
    try:
        cfg = json.loads((Path(sim_dir) / "simulation.json").read_text())["config"]
        return dt.date.fromisoformat(cfg["start"]) + dt.timedelta(days=int(cfg["days"]) - 1)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def last_partition_day() -> dt.date | None:
    """Last partition day: `LIQ_END_DATE`, else the last simulated day for the simulated source, else None
    (Dagster's default: up to yesterday)."""
    explicit = os.environ.get("LIQ_END_DATE", "").strip()
    if explicit == "yesterday":
        return None
    if explicit:
        try:
            return dt.date.fromisoformat(explicit)
        except ValueError:
            raise ValueError(f"LIQ_END_DATE must be a date like 2026-02-14 or `yesterday`, got {explicit!r}") from None
    if (os.environ.get("LIQ_SOURCE", "").strip() or "simulated") == "simulated":
        return simulated_last_day(sim_archive_dir())
    return None


def _daily(start: dt.date, last: dt.date | None) -> dg.DailyPartitionsDefinition:
    if last is None or last < start:
        return dg.DailyPartitionsDefinition(start_date=start.isoformat())
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(),
                                        end_date=(last + dt.timedelta(days=1)).isoformat())


LAST_DAY = last_partition_day()
daily = _daily(configured_start_date(), LAST_DAY)
symbols = dg.StaticPartitionsDefinition(configured_symbols())
symbol_day = dg.MultiPartitionsDefinition({"date": daily, "symbol": symbols})
monthly = dg.MonthlyPartitionsDefinition(
    start_date=configured_start_date().replace(day=1).isoformat(),
    **({} if LAST_DAY is None else {"end_date": (LAST_DAY.replace(day=1) + dt.timedelta(days=32)).replace(day=1).isoformat()}))


def symbol_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[tuple[str, dt.date]]:
    """The (symbol, day) pairs a run covers, sorted by day then symbol.

    Works for a single multi-partition key, a range run, and keys passed as plain strings (GraphQL
    launches with only the `dagster/partition` tag).
    """
    keys = context.partition_keys if context.has_partition_key_range else [context.partition_key]
    pairs = []
    for key in keys:
        if not isinstance(key, dg.MultiPartitionKey):
            key = symbol_day.get_partition_key_from_str(str(key))
        dims = key.keys_by_dimension
        pairs.append((dims["symbol"], dt.date.fromisoformat(dims["date"])))
    return sorted(pairs, key=lambda p: (p[1], p[0]))


#: The same symbol's previous day: how an asset that starts from its own D−1 output (the heatmap's end state,
#: the flow book) depends on itself. Dagster then orders backfills and automation day after day and shows
#: day D as stale when D−1 is re-materialized after it.
with warnings.catch_warnings():  # MultiPartitionMapping is marked beta; its behaviour here is tested
    warnings.simplefilter("ignore", dg.BetaWarning)
    previous_day = dg.MultiPartitionMapping({
        "date": dg.DimensionPartitionMapping("date", dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)),
        "symbol": dg.DimensionPartitionMapping("symbol", dg.IdentityPartitionMapping()),
    })


def key_for(symbol: str, day: dt.date) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": day.isoformat(), "symbol": symbol})


def attach_per_partition(context: dg.AssetExecutionContext, per_day: dict[tuple[str, dt.date], dict]) -> dict:
    """Give each partition of a run its own metadata (its day's pictures, report path, figures).

    A single-run backfill materializes every partition of its range in one step; without this, each
    partition would show the metadata of the run (the last day's picture). With one partition the
    metadata simply goes to the MaterializeResult, which is returned here to be merged by the caller.
    """
    if len(per_day) == 1:
        return next(iter(per_day.values()))
    for (symbol, day), metadata in per_day.items():
        context.add_asset_metadata(metadata, partition_key=key_for(symbol, day))
    return {}
