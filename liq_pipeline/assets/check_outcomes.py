"""Check outcomes of the raw assets, in the Dagster types the UI shows: one outcome per check and partition,
merged into one result per check for a run over many partitions."""

import inspect
from dataclasses import dataclass

import dagster as dg

from liq_pipeline import partitions
from liq_pipeline.assets.event_order import newest_partition_last
from liq_pipeline.assets.symbol_checks import check_name, symbol_day_metadata, symbol_specs
from liq_pipeline.market import parsers
from liq_pipeline.market.ingest import IngestResult


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    severity: dg.AssetCheckSeverity
    description: str
    metadata: dict


def merge_outcomes(outcomes: list[CheckOutcome]) -> CheckOutcome:
    """One result per check for a run over many partitions: it passes only if every partition passes, has the
    worst severity of the failures, and names every failing partition (not only the first)."""
    if len(outcomes) == 1:
        return outcomes[0]
    failing = [o for o in outcomes if not o.passed]
    every = dg.MetadataValue.md("| symbol | day | result |\n|---|---|---|\n" + "\n".join(
        f"| {o.metadata.get('symbol', '')} | {o.metadata.get('day', '')} | {'pass' if o.passed else '**fail**'}: "
        f"{o.description.split(': ', 1)[-1]} |" for o in outcomes))
    if not failing:
        covered = sorted({(str(o.metadata.get("symbol", "")), str(o.metadata.get("day", ""))) for o in outcomes})
        symbols = sorted({sym for sym, _ in covered})
        span = f"{covered[0][1]}…{covered[-1][1]}" if covered else ""
        return CheckOutcome(outcomes[0].name, True, outcomes[0].severity,
                            f"all {len(outcomes)} partitions pass ({', '.join(symbols)} {span})",
                            {"partitions": len(outcomes), "symbols": ", ".join(symbols), "results": every})
    errors = [o for o in failing if o.severity == dg.AssetCheckSeverity.ERROR]
    severity = dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN
    table = "| partition result |\n|---|\n" + "\n".join(f"| {o.description} |" for o in failing)
    days = ", ".join(f"{o.metadata.get('symbol', '')} {o.metadata.get('day', '')}".strip() for o in failing)
    return CheckOutcome(
        outcomes[0].name, False, severity,
        f"{len(failing)} of {len(outcomes)} partitions fail ({days}): " + "; ".join(o.description for o in failing[:3])
        + (" …" if len(failing) > 3 else ""),
        {"partitions": len(outcomes), "failing": len(failing), "failing_days": days,
         "failures": dg.MetadataValue.md(table), "results": every},
    )


def missing_check(name: str, r: IngestResult) -> CheckOutcome | None:
    if r.status == "missing":
        return CheckOutcome(name, False, dg.AssetCheckSeverity.ERROR,
                             f"{r.symbol} {r.day}: the archive has no file ({r.file_name}); partition left empty",
                             {"symbol": r.symbol, "day": str(r.day)})
    return None


#: What each raw check asserts, shown on its page in the UI (one result per run names its symbol-days).
CHECK_DESCRIPTIONS = {
    "agg_trade_ids_continuous": "aggTrade ids of the symbol-day have no gap (a gap = trades missing from the archive "
                                "file) and duplicated ids carry identical contents. Warns.",
    "agg_trades_within_day": "Every trade's time lies inside its partition's UTC day. Errors.",
    "open_interest_sampled_every_5m": "288 five-minute open-interest samples for the symbol-day; sparser OI is used as "
                                      "nearest-sample-before (warns down to hourly, errors below).",
    "open_interest_not_forward_filled": f"No run of more than {parsers.STALE_OI_RUN_ROWS} identical OI values (forward-"
                                        "filled upstream; the model ignores them). Warns.",
    "funding_settlements_match_interval": "Settlements of the symbol-day = 24 h / the funding interval. Warns.",
    **{f"{k}_complete_for_interval": f"One {k.replace('_', ' ')} candle per interval of the symbol-day (1,440 at "
                                     "1m); warns from 95 % complete, errors below."
       for k in ("klines", "mark_price_klines", "premium_index_klines")},
}


def per_symbol_results(outcomes: list[CheckOutcome], asset: str, selected: set[str]) -> list[dg.AssetCheckResult]:
    """One result per check and symbol of the run (`<check>_<SYMBOL>`, symbol_checks.py), merged over that
    symbol's days, with the symbol-days covered and the failing ones; only the checks the run selected."""
    by_check: dict[tuple[str, str], list[CheckOutcome]] = {}
    for o in outcomes:
        by_check.setdefault((o.name, str(o.metadata.get("symbol", ""))), []).append(o)
    results = []
    for (name, symbol), mine in sorted(by_check.items()):
        if check_name(name, symbol) not in selected:
            continue
        merged = merge_outcomes(mine)
        days = symbol_day_metadata(symbol, [o.metadata.get("day", "") for o in mine],
                                   [o.metadata.get("day", "") for o in mine if not o.passed])
        results.append(dg.AssetCheckResult(
            check_name=check_name(name, symbol), asset_key=dg.AssetKey(asset), passed=merged.passed,
            severity=merged.severity, description=merged.description, metadata={**merged.metadata, **days}))
    return results


def raw_asset(name: str, checks: list[str], group: str, retry: dg.RetryPolicy, doc: str | None = None):
    """A raw asset with its checks, one per configured symbol: a multi-asset of one asset that may emit a
    subset of its checks (a run covers some symbols only)."""
    def decorate(fn):
        spec = dg.AssetSpec(name, group_name=group, kinds={"duckdb"}, description=doc or inspect.getdoc(fn))
        return dg.multi_asset(
            name=name, specs=[spec], partitions_def=partitions.symbol_day, pool="duckdb", retry_policy=retry,
            backfill_policy=dg.BackfillPolicy.single_run(), can_subset=True,
            check_specs=[c for check in checks for c in symbol_specs(check, name, CHECK_DESCRIPTIONS[check])],
        )(newest_partition_last(fn))
    return decorate


def checks_only_failure(context: dg.AssetExecutionContext) -> None:
    """The raw checks are computed while their file is ingested: a run that selected the checks without
    the asset (launched alone from the UI) fails with what to do instead."""
    if not context.selected_asset_keys:
        raise dg.Failure(f"the checks of {context.op_def.name} are computed while it is materialized: materialize "
                         f"{context.op_def.name} for the partition (its checks run with it)", allow_retries=False)
