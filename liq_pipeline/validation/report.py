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

from liq_pipeline.config import MODEL, VARIANTS, ModelParams
from liq_pipeline.model import scoring
from liq_pipeline.validation.backtest import backtest
from liq_pipeline.validation.common import day_str, ensure_read_tables, finite_or_none
from liq_pipeline.validation.seed import (
    NON_CIRCULAR_VARIANT,
    OI_TOLERANCE_PCT,
    data_quality,
    funding_correlation,
    level_directions,
    oi_conservation,
)
from liq_pipeline.validation.truth import ground_truth_accuracy, has_ground_truth
from liq_pipeline.warehouse.io import replace_partition


def month_bounds(month_start: dt.date) -> tuple[dt.date, dt.date]:
    first = month_start.replace(day=1)
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def _mean(values) -> float | None:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else None


def symbol_report(con: duckdb.DuckDBPyConnection, symbol: str, month_start: dt.date,
                  variants: tuple[str, ...] = VARIANTS, params: ModelParams = MODEL,
                  run_backtest: bool = True) -> dict:
    """Every test of one symbol over one calendar month, per variant, with the grade (liquidation-math.md §9)."""
    first, last = month_bounds(month_start)
    ensure_read_tables(con)
    days = [r[0] for r in con.execute("""SELECT DISTINCT day FROM model.position_distribution
                                         WHERE symbol = ? AND day BETWEEN ? AND ? ORDER BY day""",
                                      [symbol, first, last]).fetchall()]
    report: dict = {"symbol": symbol, "month": first.strftime("%Y-%m"), "days": len(days),
                    "first_day": days[0].isoformat() if days else None, "last_day": days[-1].isoformat() if days else None}
    if not days:
        report["status"] = "no position distribution in this month"
        return report
    dq = data_quality(con, symbol, days)
    report["data_quality"] = dq
    check_corr, check_daily = funding_correlation(con, symbol, first, last, NON_CIRCULAR_VARIANT)
    report["funding_correlation_check"] = {
        "variant_tested": NON_CIRCULAR_VARIANT,
        "why": "its long/short split uses no funding input; correlating a split that used funding would be circular "
               "(liquidation-math.md §9.2)",
        **check_corr.as_dict(),
        "daily": [{"day": day_str(d.day), "long_ratio": finite_or_none(d.long_ratio),
                   "funding_rate_8h": finite_or_none(d.funding_rate_8h),
                   "implied_long_ratio": finite_or_none(d.implied_long_ratio)} for d in check_daily.itertuples()],
    }
    oi = pd.concat([oi_conservation(con, symbol, d).assign(day=d) for d in days], ignore_index=True)
    directions = level_directions(con, symbol, first, last, params)
    truth = has_ground_truth(con, symbol)
    gt_rows = [row for d in days for row in ground_truth_accuracy(con, symbol, d, variants, params)] if truth else []
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
            "funding_correlation_pre_funding": corr.as_dict(),
            "oi_conservation": {"days": int(np.isfinite(v_oi).sum()), "mean_error_pct": mean_err,
                                "max_error_pct": float(np.nanmax(v_oi)) if np.isfinite(v_oi).any() else None,
                                "days_over_1pct": int((v_oi >= OI_TOLERANCE_PCT).sum())},
            "directional": {"levels": int(len(v_dir)), "accuracy": finite_or_none(accuracy),
                            "wrong_side_notional_usd": float(v_dir.loc[~v_dir["ok"], "notional_usd"].sum())},
            "grade": g.as_dict(),
        }
        v_gt = [r for r in gt_rows if r["variant"] == variant]
        if v_gt:
            entry["ground_truth"] = {k: _mean(r[k] for r in v_gt) for k in (
                "overlap_levels", "overlap_levels_long", "overlap_levels_short", "overlap_heatmap_eod",
                "long_share_error", "simplified_formula_mare", "exact_formula_mare")} | {"days": len(v_gt)}
        if run_backtest:
            entry["backtest"] = backtest(con, symbol, first, last, variant, params=params).metrics
        per_variant[variant] = entry
    report["variants"] = per_variant
    report["status"] = "inconclusive" if all(v["grade"]["inconclusive"] for v in per_variant.values()) else "graded"
    return report


def build_report(con: duckdb.DuckDBPyConnection, month_start: dt.date, symbols: list[str],
                 variants: tuple[str, ...] = VARIANTS, params: ModelParams = MODEL) -> dict:
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
        frame = report_rows(report, symbol)
        con.execute("SELECT 1").fetchall()
        con.register("_validation_rows", frame)
        try:
            replace_partition(con, "model.validation_results", symbol, first,
                              "SELECT * FROM _validation_rows")
        finally:
            con.execute("SELECT 1").fetchall()
            con.unregister("_validation_rows")
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


def report_markdown(report: dict) -> str:
    """The report as markdown for the Dagster UI: one table per symbol, one row per variant."""
    lines = [f"## Validation {report['month']}", "", f"Grade: {report['grade_formula']}.", ""]
    for symbol, sym in report["symbols"].items():
        lines.append(f"### {symbol}: {sym.get('days', 0)} days")
        if "variants" not in sym:
            lines += ["", sym.get("status", "no data"), ""]
            continue
        dq = sym["data_quality"]
        check = sym["funding_correlation_check"]
        lines += [
            "",
            f"Data quality {fmt(dq.get('score'), '{:.1%}')} (klines {fmt(dq.get('klines'), '{:.1%}')}, mark klines "
            f"{fmt(dq.get('mark_price_klines'), '{:.1%}')}, OI {fmt(dq.get('open_interest'), '{:.1%}')}, aggTrades ids "
            f"{fmt(dq.get('agg_trades'), '{:.2%}')}).",
            f"Funding correlation (variant `{check['variant_tested']}`, {check['why']}): r = {fmt(check['r'])}, "
            f"p = {fmt(check['p'], '{:.2g}')}, n = {check['n']}: **{check['verdict']}** {check['reason']}",
            "",
            "| variant | grade | total | r (pre-funding) | OI err % mean / max | direction ok | GT overlap | "
            "GT long-share err | backtest ρ (naive) | precision@K (naive) | lift precision / notional recall |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for variant, v in sym["variants"].items():
            g, oi, d = v["grade"], v["oi_conservation"], v["directional"]
            gt = v.get("ground_truth", {})
            bt = v.get("backtest", {})
            top, naive = bt.get("top_k_model", {}), bt.get("top_k_naive", {})
            letter = g["letter"] + (" (inconclusive)" if g["inconclusive"] else "")
            lines.append(
                f"| {variant} | **{letter}** | {g['total']:.1f} | {fmt(v['funding_correlation_pre_funding']['r'])} | "
                f"{fmt(oi['mean_error_pct'], '{:.3f}')} / {fmt(oi['max_error_pct'], '{:.3f}')} | "
                f"{fmt(d['accuracy'], '{:.2%}')} | {fmt(gt.get('overlap_levels'))} | {fmt(gt.get('long_share_error'))} | "
                f"{fmt((bt.get('spearman') or {}).get('r'))} ({fmt((bt.get('naive_spearman') or {}).get('r'))}) | "
                f"{fmt(top.get('precision'), '{:.2f}')} ({fmt(naive.get('precision'), '{:.2f}')}) | "
                f"{fmt(bt.get('lift_precision'), '{:.2f}')} / {fmt(bt.get('lift_notional_recall'), '{:.2f}')} |")
        some = next(iter(sym["variants"].values()))
        if "ground_truth" in some:
            lines += ["", f"Simplified formula vs exact truth: mean abs relative error "
                          f"{fmt(some['ground_truth']['simplified_formula_mare'], '{:.4%}')}; our exact formula "
                          f"{fmt(some['ground_truth']['exact_formula_mare'], '{:.2e}')}."]
        sources = {v.get("backtest", {}).get("realized_source") for v in sym["variants"].values()} - {None}
        if sources - {"none"}:
            lines += ["", f"Backtest realized source: {', '.join(sorted(sources))}; bars of 1 h, K = 10 % of the "
                          "(bar, side) cells; lift = model / naive baseline (same notional at the mark, leverage mix, "
                          "no volume profile)."]
        elif sources:
            lines += ["", "Backtest: no realized liquidations for this month (simulator truth, recorded or imported)."]
        lines.append("")
    return "\n".join(lines)


def funding_picture_png(report: dict) -> bytes | None:
    """PNG: per symbol, the funding-free daily long ratio against the funding-implied ratio (None without data)."""
    import matplotlib.pyplot as plt  # liq_pipeline.plots, imported above, selected the Agg backend

    series = {s: sym["funding_correlation_check"]["daily"] for s, sym in report["symbols"].items()
              if sym.get("funding_correlation_check", {}).get("daily")}
    if not series:
        return None
    fig, axes = plt.subplots(len(series), 1, figsize=(9, 2.6 * len(series)), squeeze=False)
    for ax, (symbol, daily) in zip(axes[:, 0], series.items(), strict=True):
        days = [dt.date.fromisoformat(d["day"]) for d in daily]
        est = [np.nan if d["long_ratio"] is None else d["long_ratio"] for d in daily]
        implied = [np.nan if d["implied_long_ratio"] is None else d["implied_long_ratio"] for d in daily]
        ax.plot(days, est, marker="o", label=f"{NON_CIRCULAR_VARIANT} long ratio (no funding input)")
        ax.plot(days, implied, marker="s", label="0.5 + 0.3·tanh(1000·f)")
        ax.set_title(symbol, fontsize=10)
        ax.set_ylabel("long ratio")
        ax.legend(fontsize=8, loc="best")
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
