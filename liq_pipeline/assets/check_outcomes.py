"""Check outcomes of the raw assets, in the Dagster types the UI shows: one outcome per check and partition,
merged into one result per check for a run over many partitions."""

from dataclasses import dataclass

import dagster as dg

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
    if not failing:
        return CheckOutcome(outcomes[0].name, True, outcomes[0].severity,
                             f"all {len(outcomes)} partitions pass", {"partitions": len(outcomes)})
    errors = [o for o in failing if o.severity == dg.AssetCheckSeverity.ERROR]
    severity = dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN
    table = "| partition result |\n|---|\n" + "\n".join(f"| {o.description} |" for o in failing)
    days = ", ".join(str(o.metadata.get("day", "")) for o in failing)
    return CheckOutcome(
        outcomes[0].name, False, severity,
        f"{len(failing)} of {len(outcomes)} partitions fail ({days}): " + "; ".join(o.description for o in failing[:3])
        + (" …" if len(failing) > 3 else ""),
        {"partitions": len(outcomes), "failing": len(failing), "failing_days": days,
         "failures": dg.MetadataValue.md(table)},
    )


def missing_check(name: str, r: IngestResult) -> CheckOutcome | None:
    if r.status == "missing":
        return CheckOutcome(name, False, dg.AssetCheckSeverity.ERROR,
                             f"{r.symbol} {r.day}: the archive has no file ({r.file_name}); partition left empty",
                             {"symbol": r.symbol, "day": str(r.day)})
    return None
