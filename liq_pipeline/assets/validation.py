"""The validation suite in Dagster (issue 6): asset checks on the model tables, the monthly validation
report asset and the drop folder of user liquidation files. Only wiring: the queries, scores and report
live in the plain `liq_pipeline.validation` package.
"""

# No `from __future__ import annotations`: Dagster checks the `context` annotation's type at definition
# time and rejects the string form.
import datetime as dt
import math
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from liq_pipeline import config, partitions
from liq_pipeline.assets.symbol_checks import per_symbol_check
from liq_pipeline.market import liquidation_imports
from liq_pipeline.model import scoring, variants
from liq_pipeline.plots import markdown_image
from liq_pipeline.validation import checks
from liq_pipeline.validation.common import finite_or_none, md_table
from liq_pipeline.validation.report import (
    build_report,
    clean_for_json,
    days_covered,
    fmt,
    funding_picture_png,
    grade_label,
    report_markdown,
    store_report,
)
from liq_pipeline.validation.seed import (
    NON_CIRCULAR_VARIANT,
    OI_TOLERANCE_PCT,
    funding_correlation,
    funding_tracking,
    level_directions,
    true_settlement_long_shares,
)
from liq_pipeline.validation.truth import has_ground_truth
from liq_pipeline.warehouse.readers.validation import (
    latest_validation_day,
    validation_results,
)
from liq_pipeline.warehouse.schema import ensure_tables

GROUP = "validation"
FUNDING_WINDOW_DAYS = 30


@per_symbol_check("oi_is_conserved", "position_distribution", "model.position_distribution", (
    "The flow book's UNSCALED notional stays within 5 % of OI (its opens, closes and liquidations conserve "
    "open interest); the scaled distributions' Σ = OI is reported as an invariant (validation/checks.py)."))
def oi_is_conserved(duckdb: DuckDBResource, targets, note: str):
    with duckdb.get_connection() as con:
        table = checks.oi_table(con, targets, OI_TOLERANCE_PCT)
    verdict, description = checks.oi_verdict(table)
    worst = float(table["error_pct"].max()) if table["error_pct"].notna().any() else None
    failing = table[table["error_pct"] >= table["tolerance_pct"]]
    failing_days = sorted({pd.Timestamp(d).date() for d in failing["day"]})
    description = f"{verdict}: {description}" + (
        "; failing: " + ", ".join(sorted({f"{r.symbol} {r.day}" for r in failing.itertuples()})) if len(failing) else "")
    return dg.AssetCheckResult(
        passed=verdict == scoring.PASS,
        severity=dg.AssetCheckSeverity.ERROR if verdict == scoring.FAIL else dg.AssetCheckSeverity.WARN,
        description=f"{_covered(targets)}: {description}" if targets else description,
        metadata={"verdict": verdict, **({"max_error_pct": dg.MetadataValue.float(worst)} if worst is not None else {}),
                  "flow_book_tolerance_pct": checks.FLOW_BOOK_TOLERANCE_PCT, "note": note or "partition of the run",
                  "per_variant": dg.MetadataValue.md(md_table(table))}), failing_days


def _covered(targets: list[tuple[str, dt.date]]) -> str:
    """The symbol-days a check result covers, for its description: "BTCUSDT 2026-01-09…2026-01-18"."""
    by_symbol: dict[str, list[dt.date]] = {}
    for symbol, day in targets:
        by_symbol.setdefault(symbol, []).append(day)
    return ", ".join(f"{s} {min(d)}" + (f"…{max(d)}" if max(d) > min(d) else "") for s, d in sorted(by_symbol.items()))


def _directional_check(duckdb: DuckDBResource, targets, note: str, side: str):
    with duckdb.get_connection() as con:
        frames = [level_directions(con, s, d, d).assign(symbol=s) for s, d in targets]
    levels = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["symbol", "day", "variant", "side", "bin_id", "price", "notional_usd", "mark_price", "ok"])
    levels = levels[levels["side"] == side]
    accuracy = scoring.directional_accuracy(levels["ok"].to_numpy(dtype=bool))
    wrong = levels[~levels["ok"].astype(bool)]
    summary = levels.groupby(["symbol", "day", "variant"], as_index=False).agg(
        levels=("ok", "size"), wrong=("ok", lambda s: int((~s.astype(bool)).sum())),
        mark_price=("mark_price", "first"))
    passed = not levels.empty and wrong.empty
    where = "below" if side == "long" else "above"
    failing_days = sorted({pd.Timestamp(d).date() for d in wrong["day"]})
    return dg.AssetCheckResult(
        passed=passed,
        # A few stray levels are a consumption bug worth a warning; many mean the picture is wrong.
        severity=dg.AssetCheckSeverity.WARN if levels.empty or accuracy >= 0.99 else dg.AssetCheckSeverity.ERROR,
        description=(f"{_covered(targets)}: " if targets else "") + (
            f"no {side} levels for the partition" if levels.empty else
            f"{len(wrong)} of {len(levels)} {side} levels not {where} the mark (accuracy {accuracy:.2%})"
            + ("; failing: " + ", ".join(sorted({f"{r.symbol} {pd.Timestamp(r.day).date()}" for r in wrong.itertuples()}))
               if not wrong.empty else "")),
        metadata={
            **({"accuracy": dg.MetadataValue.float(accuracy)} if math.isfinite(accuracy) else {}),
            "wrong_levels": int(len(wrong)),
            "wrong_notional_usd": float(wrong["notional_usd"].sum()) if not wrong.empty else 0.0,
            "rule": f"{side} level's grid bin {'<=' if side == 'long' else '>='} the mark price's bin "
                    "(mark = model.position_signals.mark_price at the as-of time)",
            "note": note or "partition of the run",
            "per_variant": dg.MetadataValue.md(md_table(summary)),
            "worst_levels": dg.MetadataValue.md(md_table(
                wrong.sort_values("notional_usd", ascending=False).head(10)[
                    ["symbol", "day", "variant", "price", "notional_usd", "mark_price"]])),
        }), failing_days


@per_symbol_check("longs_liquidate_below_mark", "liquidation_levels", "model.liquidation_levels", (
    "Invariant (consumption removes crossed levels, so a failure is a bug, not a finding): every long "
    "liquidation level lies below the mark price at the as-of time (liquidation-math.md §9.4)."))
def longs_liquidate_below_mark(duckdb: DuckDBResource, targets, note: str):
    return _directional_check(duckdb, targets, note, "long")


@per_symbol_check("shorts_liquidate_above_mark", "liquidation_levels", "model.liquidation_levels", (
    "Invariant (consumption removes crossed levels, so a failure is a bug, not a finding): every short "
    "liquidation level lies above the mark price at the as-of time (liquidation-math.md §9.4)."))
def shorts_liquidate_above_mark(duckdb: DuckDBResource, targets, note: str):
    return _directional_check(duckdb, targets, note, "short")


@per_symbol_check("long_ratio_tracks_funding", "liquidation_heatmap", "model.liquidation_heatmap", (
    "Pearson r between the funding-free (ofi) heatmap long share averaged over each funding settlement interval "
    "and 0.5 + 0.3·tanh(1000·f) of that interval's rate, over the 30 days ending at the partition day "
    "(liquidation-math.md §9.1-§9.2); on simulated data the metadata shows what the true long share scores."))
def long_ratio_tracks_funding(duckdb: DuckDBResource, targets, note: str):
    with duckdb.get_connection() as con:
        results = []
        for symbol in sorted({s for s, _ in targets}):
            end = max(d for s, d in targets if s == symbol)
            start = end - dt.timedelta(days=FUNDING_WINDOW_DAYS - 1)
            corr, shares = funding_correlation(con, symbol, start, end)
            true = None
            if has_ground_truth(con, symbol):
                true_shares = true_settlement_long_shares(con, symbol, start, end)
                if not shares.empty:  # the same settlement intervals as the estimate
                    true_shares = true_shares[true_shares["settle_time"].isin(shares["settle_time"])]
                true = funding_tracking(true_shares)
            results.append((symbol, end, corr, shares, true))
    # Inconclusive (flat funding, too few intervals) is reported as such and never passes (a warning).
    passed, overall = checks.overall_verdict([c.verdict for _, _, c, _, _ in results])
    rows = pd.DataFrame([{"symbol": s, "window_end": e.isoformat(), "r": c.r, "p": c.p, "n": c.n,
                          "verdict": c.verdict, "reason": c.reason,
                          "true_share_r": t.r if t else None, "true_share_verdict": t.verdict if t else "no truth"}
                         for s, e, c, _, t in results])
    truth_r = {s: t.r for s, _, _, _, t in results if t is not None and t.r is not None}
    return dg.AssetCheckResult(
        passed=passed, severity=dg.AssetCheckSeverity.WARN,
        description=f"{overall}: " + "; ".join(f"{s} r={fmt(c.r)} ({c.verdict})" for s, _, c, _, _ in results),
        metadata={
            "verdict": overall, "variant_tested": NON_CIRCULAR_VARIANT,
            "why_this_variant": f"the {NON_CIRCULAR_VARIANT} split uses no funding input; correlating a split that "
                                "used funding with funding would be circular (liquidation-math.md §9.2)",
            "rule": "long share of the heatmap averaged over each settlement interval vs the implied ratio of the "
                    "rate settled at its end; pass r > 0.7, moderate r > 0.5 (p < 0.05); a constant share fails",
            **({"true_long_share_r": dg.MetadataValue.json(truth_r)} if truth_r else {}),
            "window_days": FUNDING_WINDOW_DAYS, "note": note or "window ends at the run's partition day",
            "results": dg.MetadataValue.md(md_table(rows) if not rows.empty else "(no data)"),
            "intervals": dg.MetadataValue.json({
                s: [{"settle_time": pd.Timestamp(r.settle_time).isoformat(), "long_share": finite_or_none(r.long_share),
                     "funding_rate_8h": finite_or_none(r.funding_rate_8h)} for r in shares.itertuples()]
                for s, _, _, shares, _ in results}),
        }), ([] if passed else [max(d for _, d in targets)])  # the window ending at the newest day


@dg.asset(
    partitions_def=partitions.monthly, group_name=GROUP, pool="duckdb", kinds={"duckdb"},
    # A month's report reads every symbol-day of the month (and the truth opened before it): no finer
    # partition mapping exists between monthly and date × symbol partitions, so it depends on all of them.
    deps=[dg.AssetDep(name, partition_mapping=dg.AllPartitionMapping())
          for name in ("position_distribution", "liquidation_levels", "liquidation_heatmap", "true_positions",
                       "true_liquidations")] + [dg.AssetDep("realized_liquidations")],
)
def validation_report(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Monthly validation of every symbol and variant: grade A/B/C/F (liquidation-math.md §9.5) with every
    test's figures, ground-truth accuracy when the source is simulated, and the realized-liquidation backtest.
    Written to `reports/validation-<YYYY-MM>.json` and `model.validation_results`."""
    months = sorted({dt.date.fromisoformat(k) for k in context.partition_keys})
    paths, markdown = [], []
    with duckdb.get_connection() as con:
        for month in months:
            report = clean_for_json(build_report(con, month, config.configured_symbols()))
            paths.append(store_report(con, report, config.reports_dir()))
            markdown.append(report_markdown(report))
            png = funding_picture_png(report)
            if png:
                markdown.append(markdown_image(png, f"funding-free long ratio vs funding-implied ratio, {report['month']}"))
    grades = pd.DataFrame([{"symbol": s, "variant": v, "grade": grade_label(e["grade"]),
                            "days": days_covered(report["month"], sym.get("days", 0))}
                           for s, sym in report["symbols"].items() for v, e in sym.get("variants", {}).items()])
    return dg.MaterializeResult(metadata={
        "report": dg.MetadataValue.md("\n\n".join(markdown)),
        # A table a person reads ("inconclusive" where the month could not be graded, never a bare F).
        "grades": dg.MetadataValue.md(md_table(grades) if not grades.empty else "(no symbol graded)"),
        "json_path": dg.MetadataValue.path(str(paths[-1])),
        "months": ", ".join(m.strftime("%Y-%m") for m in months),
    })


@dg.asset_check(asset=validation_report, description=(
    f"{variants.SEED_CHALLENGER} is better than the naive {variants.NAIVE} on the primary figure: overlap / ceiling "
    "with the simulator's truth when it exists, else the backtest's partial Spearman; the 90 % block-bootstrap "
    "interval (whole weeks resampled) of the daily difference must lie above 0. Inconclusive (not passed) without "
    "either figure."))
def hybrid_beats_volume_baseline(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    months = sorted({dt.date.fromisoformat(k) for k in context.partition_keys}) if context.has_partition_key or \
        context.has_partition_key_range else []
    with duckdb.get_connection() as con:
        ensure_tables(con, "model.validation_results")
        if not months:
            latest = latest_validation_day(con)
            months = [latest] if latest else []
        frame = validation_results(con, months, variants.SEED_TEST)
    rows = []
    for (symbol, day), part in frame.groupby(["symbol", "day"]):
        fig = part.set_index("metric")["value"]
        rows.append({"symbol": symbol, "month": str(day)[:7], "measure": part["detail"].iloc[0],
                     "mean_difference": fig.get("mean"), "low": fig.get("low"), "high": fig.get("high"),
                     "level": fig.get("level"), "days": fig.get("n_days"), "verdict": part["verdict"].iloc[0]})
    table = pd.DataFrame(rows)
    conclusive = table[table["verdict"] != scoring.INCONCLUSIVE] if not table.empty else table
    if conclusive.empty:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   description="inconclusive: no daily figure of both variants to compare "
                                               "(neither ground truth nor realized liquidations, or < 3 days)",
                                   metadata={"verdict": scoring.INCONCLUSIVE,
                                             "comparison": dg.MetadataValue.md(md_table(table))})
    failed = [f"{r.symbol} {r.month}" for r in conclusive.itertuples() if r.verdict != scoring.PASS]
    interval = {f"{r.symbol} {r.month}": [finite_or_none(r.low), finite_or_none(r.high)] for r in table.itertuples()}
    return dg.AssetCheckResult(
        passed=not failed, severity=dg.AssetCheckSeverity.WARN,
        description=(f"{variants.SEED_CHALLENGER} not shown better than {variants.NAIVE} for " + ", ".join(failed))
        if failed else f"{variants.SEED_CHALLENGER} better than {variants.NAIVE} everywhere (90 % interval above 0)",
        metadata={"verdict": scoring.FAIL if failed else scoring.PASS,
                  "rule": "pass when the 90 % block-bootstrap interval over weeks of the daily difference "
                          f"{variants.SEED_CHALLENGER} − {variants.NAIVE} "
                          "(overlap / ceiling on simulated data, partial Spearman on realized data) lies above 0",
                  "interval_90pct": dg.MetadataValue.json(interval),
                  "comparison": dg.MetadataValue.md(md_table(table))})


def liquidation_drop_dir() -> Path:
    """The folder users drop liquidation files into: `<data dir>/liquidations/`."""
    return config.data_dir() / "liquidations"


@dg.asset(group_name=GROUP, pool="duckdb", kinds={"duckdb"})
def realized_liquidations(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """User-supplied realized liquidations: every file of `<data dir>/liquidations/` (forceOrder JSON lines,
    liquidationSnapshot CSV or per-bar totals) loaded into raw.realized_liquidations or
    raw.realized_liquidation_bars with `source = file:<name>`; re-running replaces each file's rows. Bad
    files are listed and fail the run after the good ones are loaded."""
    folder = liquidation_drop_dir()
    with duckdb.get_connection() as con:
        results, errors = liquidation_imports.import_liquidation_folder(con, folder)
    table = pd.DataFrame([{"file": Path(r.path).name, "format": r.format, "table": r.table, "rows": r.rows,
                           "symbols": ",".join(r.symbols), "first": str(r.first_time or ""),
                           "last": str(r.last_time or "")} for r in results])
    if errors:
        raise dg.Failure(description=f"{len(errors)} liquidation file(s) in {folder} could not be read "
                                     f"({len(results)} loaded): " + " | ".join(errors),
                         metadata={"errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in errors))},
                         allow_retries=False)
    return dg.MaterializeResult(metadata={
        "folder": dg.MetadataValue.path(str(folder)), "files": len(results),
        "rows": int(table["rows"].sum()) if not table.empty else 0,
        "imports": dg.MetadataValue.md(md_table(table) if not table.empty else
                                       f"no files in {folder}: drop forceOrder JSON lines, liquidationSnapshot "
                                       "CSVs or timestamp,long_usd,short_usd CSVs there"),
    })
