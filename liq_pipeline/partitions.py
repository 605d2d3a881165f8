"""Partition definitions shared by every asset: symbol × day, plus monthly for validation reports."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from liq_pipeline.config import configured_start_date, configured_symbols

daily = dg.DailyPartitionsDefinition(start_date=configured_start_date().isoformat())
symbols = dg.StaticPartitionsDefinition(configured_symbols())
symbol_day = dg.MultiPartitionsDefinition({"date": daily, "symbol": symbols})
monthly = dg.MonthlyPartitionsDefinition(start_date=configured_start_date().replace(day=1).isoformat())


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


def key_for(symbol: str, day: dt.date) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": day.isoformat(), "symbol": symbol})
