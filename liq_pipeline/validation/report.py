"""The monthly validation report: every test per symbol and variant, its grade, the JSON file, the rows
of model.validation_results, and its markdown and picture for the Dagster UI. No Dagster."""

from __future__ import annotations

import calendar
import datetime as dt
import io
import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.config import MODEL, ModelParams
from liq_pipeline.model import scoring
from liq_pipeline.model import variants as variant_registry
from liq_pipeline.validation.backtest import backtest
from liq_pipeline.validation.bootstrap import block_mean_interval, week_of
from liq_pipeline.validation.common import ensure_read_tables, finite_or_none
from liq_pipeline.validation.seed import (
    NON_CIRCULAR_VARIANT,
    OI_TOLERANCE_PCT,
    data_quality,
    funding_correlation,
    funding_tracking,
    level_directions,
    oi_conservation,
    true_settlement_long_shares,
)
from liq_pipeline.validation.truth import ground_truth_days, has_ground_truth
from liq_pipeline.warehouse.io import write_frame
from liq_pipeline.warehouse.readers import maps


def month_bounds(month_start: dt.date) -> tuple[dt.date, dt.date]:
    first = month_start.replace(day=1)
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def _mean(values) -> float | None:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else None


#: Month means of the per-day ground-truth figures kept per variant (validation/truth.py).
GROUND_TRUTH_FIGURES = (
    "overlap_levels_10pct", "ceiling_10pct", "overlap_over_ceiling_10pct", "long_share_error_constant_half",
    "overlap_levels", "overlap_levels_long", "overlap_levels_short", "overlap_levels_1pct", "overlap_heatmap_eod",
    "ceiling", "ceiling_long", "ceiling_short", "ceiling_1pct", "overlap_over_ceiling", "overlap_over_ceiling_1pct",
    "overlap_levels_long_over_ceiling", "overlap_levels_short_over_ceiling", "overlap_heatmap_eod_over_ceiling",
    "overlap_heatmap_eod_1pct", "overlap_heatmap_eod_over_ceiling_1pct",
    "distance_log", "distance_log_ceiling", "long_share_error", "simplified_formula_mare", "exact_formula_mare")
#: The pair `hybrid_beats_volume_baseline` compares, and the level of its bootstrap interval over days.
CHALLENGER, BASELINE_VARIANT = variant_registry.SEED_CHALLENGER, variant_registry.NAIVE
BOOTSTRAP_LEVEL = 0.90


def funding_check(con: duckdb.DuckDBPyConnection, symbol: str, first: dt.date, last: dt.date,
                  with_truth: bool) -> dict:
    """The funding test of the funding-free variant (seed.funding_correlation), with, on simulated data,
    the same test on the simulator's true long share: what a perfect estimate would score."""
    corr, shares = funding_correlation(con, symbol, first, last, NON_CIRCULAR_VARIANT)
    out = {
        "variant_tested": NON_CIRCULAR_VARIANT,
        "why": "its long/short split uses no funding input; correlating a split that used funding would be circular "
               "(liquidation-math.md §9.2)",
        "rule": "Pearson r of the heatmap's long share averaged over each funding settlement interval against "
                "0.5 + 0.3·tanh(1000·f) of the rate settled at the end of that interval",
        **corr.as_dict(),
    }
    intervals = shares[["settle_time", "funding_rate_8h", "long_share", "implied_long_ratio"]].copy()
    if with_truth:
        true_shares = true_settlement_long_shares(con, symbol, first, last)
        # Over the same settlement intervals as the estimate (all of them when it has none).
        same = true_shares[true_shares["settle_time"].isin(shares["settle_time"])] if not shares.empty else true_shares
        out["truth"] = funding_tracking(same).as_dict()
        intervals = intervals.merge(true_shares[["settle_time", "long_share"]].rename(
            columns={"long_share": "true_long_share"}), on="settle_time", how="outer").sort_values("settle_time")
    out["intervals"] = [{k: (pd.Timestamp(v).isoformat() if k == "settle_time" else finite_or_none(v))
                         for k, v in row.items()} for row in intervals.to_dict("records")]
    return out


def hybrid_comparison(per_variant: dict, gt_rows: list[dict]) -> dict:
    """Is hybrid better than volume_5050 on the primary figure? Per-day differences hybrid − volume_5050 of
    overlap / ceiling within ±10 % of the mark when ground truth exists, else of the backtest's partial Spearman (the map's ρ
    given bar range and side excursion); the mean with a 90 % block-bootstrap interval over weeks
    (paired_difference). Verdict pass when the interval lies above 0, fail otherwise, inconclusive without
    either figure or with fewer than 2 weeks."""
    def by_day(rows, key):
        return {r["day"]: r.get(key) for r in rows if r.get(key) is not None and math.isfinite(r.get(key))}

    if gt_rows:
        measure = "ground_truth.overlap_over_ceiling_10pct"
        a = by_day([r for r in gt_rows if r["variant"] == CHALLENGER], "overlap_over_ceiling_10pct")
        b = by_day([r for r in gt_rows if r["variant"] == BASELINE_VARIANT], "overlap_over_ceiling_10pct")
    else:
        measure = "backtest.partial_spearman"
        a = by_day(per_variant.get(CHALLENGER, {}).get("backtest", {}).get("daily", []), "partial_spearman")
        b = by_day(per_variant.get(BASELINE_VARIANT, {}).get("backtest", {}).get("daily", []), "partial_spearman")
    days, interval = paired_difference(a, b)
    if interval.low is None:
        verdict = scoring.INCONCLUSIVE
    else:
        verdict = scoring.PASS if interval.low > 0 else scoring.FAIL
    return {"measure": measure, "challenger": CHALLENGER, "baseline": BASELINE_VARIANT,
            "difference": interval.as_dict(), "verdict": verdict,
            "daily": [{"day": d, CHALLENGER: a[d], BASELINE_VARIANT: b[d]} for d in days]}


def paired_difference(a: dict, b: dict, level: float = BOOTSTRAP_LEVEL) -> tuple[list, scoring.BootstrapInterval]:
    """The keys (days, or e.g. (pair, symbol, day) tuples) both `a` and `b` have, sorted, and the mean of
    a[k] − b[k] over them with a block-bootstrap interval over whole weeks (validation/bootstrap.py): the
    book carries over from day to day, so days are not resampled as if independent."""
    keys = sorted(set(a) & set(b))
    return keys, block_mean_interval(np.array([a[k] - b[k] for k in keys], dtype=np.float64),
                                     [week_of(k) for k in keys], level)


def symbol_report(con: duckdb.DuckDBPyConnection, symbol: str, month_start: dt.date,
                  variants: tuple[str, ...] = variant_registry.NAMES, params: ModelParams = MODEL,
                  run_backtest: bool = True) -> dict:
    """Every test of one symbol over one calendar month, per variant, with the grade (liquidation-math.md §9)."""
    first, last = month_bounds(month_start)
    ensure_read_tables(con)
    days = maps.distribution_days(con, symbol, first, last)
    report: dict = {"symbol": symbol, "month": first.strftime("%Y-%m"), "days": len(days),
                    "first_day": days[0].isoformat() if days else None, "last_day": days[-1].isoformat() if days else None}
    if not days:
        report["status"] = "no position distribution in this month"
        return report
    dq = data_quality(con, symbol, days)
    report["data_quality"] = dq
    truth = has_ground_truth(con, symbol)
    report["funding_correlation_check"] = funding_check(con, symbol, first, last, truth)
    oi = pd.concat([oi_conservation(con, symbol, d).assign(day=d) for d in days], ignore_index=True)
    directions = level_directions(con, symbol, first, last, params)
    gt_rows = ground_truth_days(con, symbol, days, variants, params) if truth else []
    report["ground_truth"] = {"available": truth, "daily": gt_rows}
    per_variant = {}
    for variant in variants:
        corr, _ = funding_correlation(con, symbol, first, last, variant)
        v_oi = oi[oi["variant"] == variant]["error_pct"].to_numpy(dtype=np.float64)
        v_dir = directions[directions["variant"] == variant]
        accuracy = scoring.directional_accuracy(v_dir["ok"].to_numpy(dtype=bool))
        mean_err = float(np.nanmean(v_oi)) if np.isfinite(v_oi).any() else None
        g = scoring.grade(corr.r, mean_err, accuracy if math.isfinite(accuracy) else None, dq.get("score"))
        entry = {
            "funding_tracking": corr.as_dict(),
            "oi_conservation": {"days": int(np.isfinite(v_oi).sum()), "mean_error_pct": mean_err,
                                "max_error_pct": float(np.nanmax(v_oi)) if np.isfinite(v_oi).any() else None,
                                "days_over_1pct": int((v_oi >= OI_TOLERANCE_PCT).sum())},
            "directional": {"levels": int(len(v_dir)), "accuracy": finite_or_none(accuracy),
                            "wrong_side_notional_usd": float(v_dir.loc[~v_dir["ok"], "notional_usd"].sum())},
            "grade": g.as_dict(),
        }
        v_gt = [r for r in gt_rows if r["variant"] == variant]
        if v_gt:
            entry["ground_truth"] = {k: _mean(r.get(k) for r in v_gt) for k in GROUND_TRUTH_FIGURES} | {
                "days": len(v_gt)}
        if run_backtest:
            entry["backtest"] = backtest(con, symbol, first, last, variant, params=params).metrics
        per_variant[variant] = entry
    report["variants"] = per_variant
    report[variant_registry.SEED_TEST] = hybrid_comparison(per_variant, gt_rows)
    report["status"] = "inconclusive" if all(v["grade"]["inconclusive"] for v in per_variant.values()) else "graded"
    return report


def build_report(con: duckdb.DuckDBPyConnection, month_start: dt.date, symbols: list[str],
                 variants: tuple[str, ...] = variant_registry.NAMES, params: ModelParams = MODEL) -> dict:
    first, last = month_bounds(month_start)
    return {
        "month": first.strftime("%Y-%m"), "period": [first.isoformat(), last.isoformat()],
        "generated_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "grade_formula": "total = 0.5·fc + 0.2·oi + 0.3·dir; fc = clamp(100·r, 0, 100) with the pre-funding r "
                         "(undefined r → 0, inconclusive); oi = max(0, 100 − 10·mean error %); dir = 100·accuracy; "
                         f"A ≥ 90, B ≥ 80, C ≥ 70, else F; data quality < {scoring.DATA_QUALITY_FOR_TOP_GRADES:.0%} caps at C",
        "model_params": {"leverages": list(params.leverages), "leverage_weights": list(params.leverage_weights),
                         "bin_mode": params.bin_mode, "bin_rel_width": params.bin_rel_width},
        "symbols": {s: symbol_report(con, s, first, variants, params) for s in symbols},
    }


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, bool):
        out[prefix] = float(value)
    elif isinstance(value, (int, float, np.floating, np.integer)) or value is None:
        out[prefix] = value
    # strings and lists (daily tables, notes) stay in the JSON file only


def report_rows(report: dict, symbol: str) -> pd.DataFrame:
    """Long-format rows of model.validation_results for one symbol of a report."""
    sym = report["symbols"][symbol]
    first = dt.date.fromisoformat(report["period"][0])
    rows = []
    for variant, entry in sym.get("variants", {}).items():
        for test, figures in entry.items():
            flat: dict = {}
            _flatten("", figures, flat)
            verdict = figures.get("verdict") or figures.get("letter") if isinstance(figures, dict) else None
            for metric, value in flat.items():
                rows.append({"symbol": symbol, "day": first, "variant": variant, "test": test, "metric": metric,
                             "value": finite_or_none(value), "verdict": verdict, "detail": None})
    dq = sym.get("data_quality") or {}
    for metric, value in dq.items():
        rows.append({"symbol": symbol, "day": first, "variant": "all", "test": "data_quality", "metric": metric,
                     "value": finite_or_none(value), "verdict": None, "detail": None})
    check = sym.get("funding_correlation_check")
    if check:
        rows.append({"symbol": symbol, "day": first, "variant": check["variant_tested"], "test": "funding_correlation_check",
                     "metric": "r", "value": check["r"], "verdict": check["verdict"], "detail": check["reason"] or None})
        if check.get("truth"):
            rows.append({"symbol": symbol, "day": first, "variant": "truth", "test": "funding_correlation_check",
                         "metric": "r", "value": check["truth"]["r"], "verdict": check["truth"]["verdict"],
                         "detail": "the same test on the simulator's true long share"})
    comparison = sym.get(variant_registry.SEED_TEST)
    if comparison:
        for metric, value in comparison["difference"].items():
            rows.append({"symbol": symbol, "day": first, "variant": comparison["challenger"],
                         "test": variant_registry.SEED_TEST, "metric": metric, "value": finite_or_none(value),
                         "verdict": comparison["verdict"], "detail": comparison["measure"]})
    return pd.DataFrame(rows, columns=["symbol", "day", "variant", "test", "metric", "value", "verdict", "detail"])


def store_report(con: duckdb.DuckDBPyConnection, report: dict, reports_dir: Path) -> Path:
    """Write the JSON file `validation-<YYYY-MM>.json` and replace the month's rows of model.validation_results."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"validation-{report['month']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=_json_default, allow_nan=False))
    tmp.replace(path)
    first = dt.date.fromisoformat(report["period"][0])
    for symbol in report["symbols"]:
        write_frame(con, "model.validation_results", symbol, first, report_rows(report, symbol))
    return path


def _json_default(value):
    if isinstance(value, (dt.date, dt.datetime, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return finite_or_none(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def clean_for_json(value):
    """Replace nan/inf by None everywhere (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: clean_for_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_for_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return finite_or_none(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def fmt(value, pattern: str = "{:.3f}") -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else pattern.format(value)


#: Columns of the yardstick table (`yardstick_rows`): key, header, format.
YARDSTICK_COLUMNS = (
    ("month", "month", "{}"), ("symbol", "symbol", "{}"), ("variant", "variant", "{}"), ("grade", "grade", "{}"),
    ("overlap_over_ceiling_10pct", "overlap / ceiling ±10 % (primary)", "{:.0%}"),
    ("overlap", "overlap 0.1 %", "{:.3f}"), ("ceiling", "ceiling 0.1 %", "{:.3f}"),
    ("overlap_over_ceiling", "overlap / ceiling", "{:.0%}"), ("overlap_1pct", "overlap 1 %", "{:.3f}"),
    ("ceiling_1pct", "ceiling 1 %", "{:.3f}"), ("overlap_over_ceiling_1pct", "/ ceiling 1 %", "{:.0%}"),
    ("distance_log", "distance (oracle)", "{:.4f}"), ("long_share_error", "long-share err", "{:.3f}"),
    ("long_share_error_constant_half", "err of constant 0.5", "{:.3f}"),
    ("map_rho", "map ρ", "{:.3f}"), ("leverage_only_rho", "leverage-only ρ", "{:.3f}"),
    ("bar_range_rho", "range ρ", "{:.3f}"), ("side_excursion_rho", "excursion ρ", "{:.3f}"),
    ("partial_rho", "partial ρ", "{:+.3f}"), ("recall", "top-10 % recall map", "{:.2f}"),
    ("recall_baselines", "recall lev / range / exc", "{}"), ("missed", "realized where map = 0", "{:.1%}"),
    ("lift_rho", "lift ρ vs strongest", "{:+.3f}"),
)


def yardstick_rows(report: dict) -> list[dict]:
    """One row per symbol and variant of a report with the honest yardsticks (issue 13): overlap with the
    true map, the oracle's ceiling and their ratio at 0.1 % and 1 % bins, the bin-free distance, the
    backtest Spearman of the map and the three baselines, the partial ρ, top-10 % notional recall and the
    lift against the strongest baseline. Missing figures are None (real data has no ceiling)."""
    rows = []
    for symbol, sym in report.get("symbols", {}).items():
        for variant, v in sym.get("variants", {}).items():
            gt, bt, g = v.get("ground_truth") or {}, v.get("backtest") or {}, v.get("grade") or {}
            base = bt.get("baselines") or {}

            def rho(name, base=base):
                return ((base.get(name) or {}).get("spearman") or {}).get("r")

            def recall(name, base=base):
                return ((base.get(name) or {}).get("top_k") or {}).get("notional_recall")

            distance = None
            if gt.get("distance_log") is not None:
                distance = f"{gt['distance_log']:.4f} ({fmt(gt.get('distance_log_ceiling'), '{:.4f}')})"
            rows.append({
                "month": report.get("month"), "symbol": symbol, "variant": variant,
                "grade": grade_label(g),
                "overlap_over_ceiling_10pct": gt.get("overlap_over_ceiling_10pct"),
                "long_share_error_constant_half": gt.get("long_share_error_constant_half"),
                "overlap": gt.get("overlap_levels"), "ceiling": gt.get("ceiling"),
                "overlap_over_ceiling": gt.get("overlap_over_ceiling"), "overlap_1pct": gt.get("overlap_levels_1pct"),
                "ceiling_1pct": gt.get("ceiling_1pct"), "overlap_over_ceiling_1pct": gt.get("overlap_over_ceiling_1pct"),
                "distance_log": distance, "long_share_error": gt.get("long_share_error"),
                "map_rho": (bt.get("spearman") or {}).get("r"), "leverage_only_rho": rho("leverage_only"),
                "bar_range_rho": rho("bar_range"), "side_excursion_rho": rho("side_excursion"),
                "partial_rho": (bt.get("partial_spearman") or {}).get("r"),
                "recall": (bt.get("top_k_model") or {}).get("notional_recall"),
                "side_excursion_recall": recall("side_excursion"),
                "recall_baselines": " / ".join(fmt(recall(n), "{:.2f}") for n in
                                               ("leverage_only", "bar_range", "side_excursion")) if base else None,
                "missed": bt.get("realized_share_where_map_zero"), "lift_rho": bt.get("lift_spearman"),
            })
    return rows


def days_covered(month: str, days: int) -> str:
    """"14 of 28 days (partial month)", so a month with missing days never reads as complete."""
    first = dt.date.fromisoformat(f"{month}-01")
    total = calendar.monthrange(first.year, first.month)[1]
    return f"{days} of {total} days" + (" (partial month)" if days < total else "")


def grade_label(grade: dict, with_total: bool = True) -> str:
    """A grade as shown: the letter and total, or "inconclusive" when the grade could not be tested (an
    untestable month is not a failure, so it never reads as F)."""
    if not grade:
        return "-"
    if grade.get("inconclusive"):
        return "inconclusive"
    return f"{grade.get('letter', '-')} ({grade.get('total', float('nan')):.1f})" if with_total else grade.get("letter", "-")


#: Columns repeated at the left of each part of a wide yardstick table, and the most columns per part, so
#: a table fits a page or the Dagster UI's metadata pop-up.
YARDSTICK_KEY_COLUMNS = 3
YARDSTICK_MAX_COLUMNS = 9


def yardstick_markdown(rows: list[dict], columns: tuple = YARDSTICK_COLUMNS, max_columns: int | None = None) -> str:
    """The yardstick rows as a markdown table ("–" for a figure that does not exist); with `max_columns`,
    split into parts of at most that many columns, each repeating the key columns (month, symbol, variant)."""
    key, rest = columns[:YARDSTICK_KEY_COLUMNS], columns[YARDSTICK_KEY_COLUMNS:]
    width = (max_columns or len(columns)) - YARDSTICK_KEY_COLUMNS
    parts = []
    for i in range(0, max(len(rest), 1), width):
        cols = key + rest[i:i + width]
        out = ["| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            out.append("| " + " | ".join(fmt(r.get(k), f) if not isinstance(r.get(k), str) else r[k]
                                         for k, _, f in cols) + " |")
        parts.append("\n".join(out))
    return "\n\n".join(parts)


#: The columns `make demo` prints in the terminal (the full set is in the markdown table).
TERMINAL_COLUMNS = (
    ("symbol", "symbol", "{}"), ("variant", "variant", "{}"), ("grade", "grade", "{}"),
    ("overlap", "overlap", "{:.3f}"), ("ceiling", "ceiling", "{:.3f}"), ("overlap_over_ceiling", "/ceil", "{:.0%}"),
    ("overlap_over_ceiling_1pct", "/ceil 1%", "{:.0%}"), ("distance_log", "distance (oracle)", "{}"),
    ("map_rho", "map ρ", "{:.3f}"), ("leverage_only_rho", "lev ρ", "{:.3f}"), ("bar_range_rho", "range ρ", "{:.3f}"),
    ("side_excursion_rho", "exc ρ", "{:.3f}"), ("partial_rho", "partial", "{:+.3f}"), ("recall", "recall", "{:.2f}"),
    ("lift_rho", "lift ρ", "{:+.3f}"),
)


def yardstick_text(report: dict, columns: tuple = TERMINAL_COLUMNS) -> list[str]:
    """The yardstick rows as aligned text lines, header first."""
    rows = yardstick_rows(report)
    cells = [[h for _, h, _ in columns]] + [[r[k] if isinstance(r.get(k), str) else fmt(r.get(k), f)
                                              for k, _, f in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
            for row in cells]


def report_markdown(report: dict) -> str:
    """The report as markdown for the Dagster UI: per symbol the seed tests, then the yardstick table."""
    lines = [f"## Validation {report['month']}", "", f"Grade: {report['grade_formula']}.", ""]
    for symbol, sym in report["symbols"].items():
        lines.append(f"### {symbol}: {days_covered(report['month'], sym.get('days', 0))}")
        if "variants" not in sym:
            lines += ["", sym.get("status", "no data"), ""]
            continue
        dq = sym["data_quality"]
        check = sym["funding_correlation_check"]
        truth = check.get("truth")
        cmp_ = sym.get(variant_registry.SEED_TEST) or {}
        diff = cmp_.get("difference") or {}
        lines += [
            "",
            f"Data quality {fmt(dq.get('score'), '{:.1%}')} (klines {fmt(dq.get('klines'), '{:.1%}')}, mark klines "
            f"{fmt(dq.get('mark_price_klines'), '{:.1%}')}, OI {fmt(dq.get('open_interest'), '{:.1%}')}, aggTrades ids "
            f"{fmt(dq.get('agg_trades'), '{:.2%}')}).",
            f"Funding (variant `{check['variant_tested']}`, {check['why']}; {check['rule']}): r = {fmt(check['r'])}, "
            f"p = {fmt(check['p'], '{:.2g}')}, n = {check['n']}: **{check['verdict']}** {check['reason']}"
            + (f" The simulator's true long share scores r = {fmt(truth['r'])} ({truth['verdict']}) on the same test."
               if truth else ""),
            f"{CHALLENGER} vs {BASELINE_VARIANT} on {cmp_.get('measure', '–')}: mean daily difference {fmt(diff.get('mean'), '{:+.4f}')}, "
            f"{fmt(diff.get('level'), '{:.0%}')} bootstrap interval [{fmt(diff.get('low'), '{:+.4f}')}, "
            f"{fmt(diff.get('high'), '{:+.4f}')}] over {diff.get('n_days', 0)} days: **{cmp_.get('verdict', '–')}**.",
            "",
            "| variant | grade | total | funding r | OI err % mean / max | direction ok |",
            "|---|---|---|---|---|---|",
        ]
        for variant, v in sym["variants"].items():
            g, oi, d = v["grade"], v["oi_conservation"], v["directional"]
            letter = grade_label(g, with_total=False)
            lines.append(
                f"| {variant} | **{letter}** | {g['total']:.1f} | {fmt(v['funding_tracking']['r'])} | "
                f"{fmt(oi['mean_error_pct'], '{:.3f}')} / {fmt(oi['max_error_pct'], '{:.3f}')} | "
                f"{fmt(d['accuracy'], '{:.2%}')} |")
        lines += ["", yardstick_markdown(yardstick_rows({"month": report["month"], "symbols": {symbol: sym}}),
                                         max_columns=YARDSTICK_MAX_COLUMNS)]
        some = next(iter(sym["variants"].values()))
        if "ground_truth" in some:
            lines += ["", f"Simplified formula vs exact truth: mean abs relative error "
                          f"{fmt(some['ground_truth']['simplified_formula_mare'], '{:.4%}')}; our exact formula "
                          f"{fmt(some['ground_truth']['exact_formula_mare'], '{:.2e}')}. Ceiling: the oracle map that "
                          "knows every open position's entry, size and side and spreads its leverage over the true "
                          "mix that survived its mark path."]
        sources = {v.get("backtest", {}).get("realized_source") for v in sym["variants"].values()} - {None}
        if sources - {"none"}:
            lines += ["", f"Backtest realized source: {', '.join(sorted(sources))}; bars of 1 h, K = 10 % of the "
                          "(bar, side) cells; baselines: leverage-only (same notional at the mark, leverage mix), bar "
                          "range and side excursion (× OI); partial ρ = the map's ρ given range and excursion."]
        elif sources:
            lines += ["", "Backtest: no realized liquidations for this month (simulator truth, recorded or imported)."]
        lines.append("")
    return "\n".join(lines)


def funding_picture_png(report: dict) -> bytes | None:
    """PNG: per symbol, the funding-free long share per settlement interval against the implied ratio of
    that interval's rate (and the true long share on simulated data); None without data."""
    import matplotlib.pyplot as plt

    import liq_pipeline.plots  # noqa: F401  (selects the Agg backend before pyplot draws)

    series = {s: sym["funding_correlation_check"]["intervals"] for s, sym in report["symbols"].items()
              if sym.get("funding_correlation_check", {}).get("intervals")}
    if not series:
        return None
    fig, axes = plt.subplots(len(series), 1, figsize=(9, 2.6 * len(series)), squeeze=False)
    for ax, (symbol, intervals) in zip(axes[:, 0], series.items(), strict=True):
        times = [dt.datetime.fromisoformat(d["settle_time"]) for d in intervals]

        def col(key, rows=intervals):
            return [np.nan if r.get(key) is None else r[key] for r in rows]

        ax.plot(times, col("long_share"), marker=".", label=f"{NON_CIRCULAR_VARIANT} long share (no funding input)")
        ax.plot(times, col("implied_long_ratio"), marker=".", label="0.5 + 0.3·tanh(1000·f)")
        if any(r.get("true_long_share") is not None for r in intervals):
            ax.plot(times, col("true_long_share"), lw=1, color="grey", label="true long share (simulator)")
        ax.set_title(symbol, fontsize=10)
        ax.set_ylabel("long share")
        ax.legend(fontsize=8, loc="best")
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
