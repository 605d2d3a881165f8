"""One check per configured symbol, so the UI answers which symbol-day failed which check.

A check result in Dagster 1.13 belongs to a check, not to a partition of a range run (a partitioned check
takes its partition from the step's single partition key, which a single-run backfill does not have), so
every symbol gets its own check, named `<check>_<SYMBOL>`: its latest result is that symbol's, whichever
symbol ran last, and its history is that symbol's days. A run yields results only for the symbols it
covers (the checks are subsettable); each result's metadata names the symbol-days it covers
(`symbol_days`) and the failing ones (`failing_days`, empty when it passes).
"""

import datetime as dt
from collections.abc import Callable, Iterable

import dagster as dg
from dagster_duckdb import DuckDBResource

from liq_pipeline import partitions
from liq_pipeline.warehouse.readers.validation import latest_day_per_symbol


def symbols() -> list[str]:
    """The configured symbols (LIQ_SYMBOLS), one check each."""
    return list(partitions.symbols.get_partition_keys())


def check_name(base: str, symbol: str) -> str:
    return f"{base}_{symbol}"


def base_and_symbol(name: str) -> tuple[str, str]:
    """`agg_trade_ids_continuous_BTCUSDT` → (`agg_trade_ids_continuous`, `BTCUSDT`)."""
    base, _, symbol = name.rpartition("_")
    return base, symbol


def symbol_specs(base: str, asset: str, description: str) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(check_name(base, s), asset=asset, description=f"{s}: {description}") for s in symbols()]


def span(days: Iterable[dt.date | str]) -> str:
    """"2026-01-09…2026-01-18 (10 days)", or the one day."""
    days = sorted({str(d) for d in days})
    if not days:
        return ""
    return days[0] if len(days) == 1 else f"{days[0]}…{days[-1]} ({len(days)} days)"


def symbol_day_metadata(symbol: str, covered: Iterable, failing: Iterable) -> dict:
    failing = sorted({str(d) for d in failing})
    return {"symbol": symbol, "symbol_days": f"{symbol} {span(covered)}",
            "failing_days": ", ".join(f"{symbol} {d}" for d in failing)}


def check_targets(context, con, table: str) -> tuple[list[tuple[str, dt.date]], str]:
    """The (symbol, day) pairs a check evaluates: the run's partitions, or, when the check runs without a
    partition (launched alone from the UI), the latest day of every symbol in `table`; the note says which."""
    if context.has_partition_key or context.has_partition_key_range:
        return partitions.symbol_days(context), ""
    return latest_day_per_symbol(con, table), (
        "run without a partition: evaluated the latest materialized day of every symbol")


#: A check body: (warehouse, one symbol's (symbol, day) pairs, note) → the result and its failing days.
CheckBody = Callable[[DuckDBResource, list[tuple[str, dt.date]], str], tuple[dg.AssetCheckResult, list[dt.date]]]


def per_symbol_check(base: str, asset: str, table: str, description: str):
    """Turn a check body into a subsettable multi-asset check with one check per symbol; a run yields the
    result of every selected symbol it covers (op name `<asset>_<base>`, as a single check would have)."""
    def decorate(body: CheckBody) -> dg.AssetChecksDefinition:
        @dg.multi_asset_check(specs=symbol_specs(base, asset, description), can_subset=True, name=f"{asset}_{base}")
        def _check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource):
            selected = {key.name for key in context.selected_asset_check_keys}
            with duckdb.get_connection() as con:
                targets, note = check_targets(context, con, table)
            for symbol in sorted({s for s, _ in targets}):
                if check_name(base, symbol) not in selected:
                    continue
                mine = [t for t in targets if t[0] == symbol]
                result, failing = body(duckdb, mine, note)
                yield dg.AssetCheckResult(
                    check_name=check_name(base, symbol), asset_key=dg.AssetKey(asset), passed=result.passed,
                    severity=result.severity, description=result.description,
                    metadata={**symbol_day_metadata(symbol, [d for _, d in mine], failing), **result.metadata})

        _check.__doc__ = body.__doc__
        return _check
    return decorate


def checks_for_symbol(check_keys: Iterable[dg.AssetCheckKey], symbol: str) -> set[dg.AssetCheckKey]:
    """The checks a run of `symbol` alone plans: its own and those not per symbol (Dagster records every
    check a run selects as planned, so the other symbols' checks would read "not executed" after it)."""
    others = set(symbols()) - {symbol}
    return {k for k in check_keys if base_and_symbol(k.name)[1] not in others}


def job_for_symbol(job: dg.JobDefinition, symbol: str) -> dg.JobDefinition:
    """`job` with the other symbols' checks left out (same name, same assets)."""
    layer = job.asset_layer
    return job.get_subset(asset_selection=set(layer.selected_asset_keys),
                          asset_check_selection=checks_for_symbol(layer.asset_graph.asset_check_keys, symbol))
