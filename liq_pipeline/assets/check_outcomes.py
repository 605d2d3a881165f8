"""Check outcomes of the raw assets, in the Dagster types the UI shows: one outcome per check and partition,
merged into one result per check for a run over many partitions."""

from dataclasses import dataclass

import dagster as dg

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


def check_spec(name: str, asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description=CHECK_DESCRIPTIONS[name])
