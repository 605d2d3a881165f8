"""The validation suite (issue 6): asset checks on the model tables, the monthly validation report with its
grade, ground-truth accuracy against the simulator, the realized-liquidation backtest and the drop folder
of user liquidation files.

Two layers in one file: warehouse queries that return plain frames and dicts (no Dagster, also used by
`liq backtest`), then the thin Dagster checks and assets. The metrics themselves live in model/scoring.py.
"""

# No `from __future__ import annotations`: Dagster checks the `context` annotation's type at definition
# time and rejects the string form.
import calendar
import datetime as dt
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb as duckdb_lib
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from liq_pipeline import config, partitions
from liq_pipeline.config import KLINE_INTERVAL_MS, MODEL, VARIANTS, ModelParams
from liq_pipeline.market import liquidation_imports
from liq_pipeline.model import margin, scoring
from liq_pipeline.model.grid import grid_for
from liq_pipeline.plots import markdown_image
from liq_pipeline.warehouse.io import replace_partition
from liq_pipeline.warehouse.schema import ensure_tables

GROUP = "validation"
#: The variant whose long/short split uses no funding input: the only non-circular one to correlate with
#: funding (liquidation-math.md §9.2).
NON_CIRCULAR_VARIANT = "ofi"
FUNDING_WINDOW_DAYS = 30
OI_TOLERANCE_PCT = 1.0
#: Flat MMR of the "simplified" formula as most heatmap tools use it (liquidation-math.md §7).
SIMPLIFIED_MMR = 0.004
#: A heatmap snapshot older than this at a bar's start does not predict that bar.
MAX_SNAPSHOT_AGE = dt.timedelta(days=1)
#: Default share of (bar, side) cells flagged by the top-K test of the backtest.
TOP_K_SHARE = 0.10
#: hybrid counts as worse than volume_5050 only when its score is lower by more than this (overlap or ρ):
#: smaller differences are within day-to-day noise of a month's mean.
NOT_WORSE_MARGIN = 0.005

_READ_TABLES = ("raw.klines", "raw.mark_price_klines", "raw.agg_trades", "raw.open_interest", "raw.funding_rates",
                "raw.realized_liquidations", "raw.realized_liquidation_bars", "truth.positions",
                "truth.liquidations", "model.position_signals", "model.position_distribution",
                "model.liquidation_levels", "model.liquidation_heatmap", "model.validation_results")


def _ensure_read_tables(con: duckdb_lib.DuckDBPyConnection) -> None:
    """Create missing tables empty, so a query over a fresh warehouse answers "no rows" instead of failing."""
    ensure_tables(con, *_READ_TABLES)


def _day_str(value) -> str:
    """YYYY-MM-DD of a DATE read back through pandas (which may hand it over as a Timestamp)."""
    return pd.Timestamp(value).date().isoformat()


def _finite_or_none(x) -> float | None:
    return float(x) if x is not None and isinstance(x, (int, float, np.floating)) and math.isfinite(x) else None


# =====================================================================================================
# Warehouse queries (no Dagster)
# =====================================================================================================

def oi_conservation(con: duckdb_lib.DuckDBPyConnection, symbol: str, day: dt.date) -> pd.DataFrame:
    """Per variant: Σ(long + short) of the position distribution against the actual OI of position_signals.

    Columns: variant, estimated_usd, oi_usd, error_pct (nan when the OI is missing). liquidation-math.md
    §9.3: measured on the full distribution, before any consumption.
    """
    _ensure_read_tables(con)
    frame = con.execute("""
        SELECT d.variant, sum(d.long_usd + d.short_usd) AS estimated_usd, any_value(s.oi_usd) AS oi_usd
        FROM model.position_distribution d
        LEFT JOIN model.position_signals s ON s.symbol = d.symbol AND s.day = d.day
        WHERE d.symbol = ? AND d.day = ?
        GROUP BY d.variant ORDER BY d.variant""", [symbol, day]).df()
    oi = frame["oi_usd"].astype("float64").to_numpy()
    est = frame["estimated_usd"].astype("float64").to_numpy()
    ok = np.isfinite(oi) & (oi > 0)
    frame["error_pct"] = np.where(ok, np.abs(est - oi) / np.where(ok, oi, 1.0) * 100.0, np.nan)
    return frame


def level_directions(con: duckdb_lib.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date,
                     params: ModelParams = MODEL) -> pd.DataFrame:
    """Every liquidation level of days start..end with its mark bin and whether it lies on the right side.

    Columns: day, variant, side, bin_id, price, notional_usd, mark_price, mark_bin, ok (§9.4). Levels of a
    day without a mark price get mark_bin NULL and ok False: they could not be shown to be right.
    """
    _ensure_read_tables(con)
    grid = grid_for(symbol, params)
    frame = con.execute(f"""
        SELECT l.day, l.variant, l.side, l.bin_id, l.price, l.notional_usd, s.mark_price,
               CASE WHEN s.mark_price > 0 THEN {grid.sql_bin_id('s.mark_price')} END AS mark_bin
        FROM model.liquidation_levels l
        LEFT JOIN model.position_signals s ON s.symbol = l.symbol AND s.day = l.day
        WHERE l.symbol = ? AND l.day BETWEEN ? AND ?""", [symbol, start, end]).df()
    known = frame["mark_bin"].notna().to_numpy()
    mark_bin = frame["mark_bin"].fillna(0).astype("int64").to_numpy()
    frame["ok"] = known & scoring.directional_ok(frame["side"].to_numpy(dtype=str), frame["bin_id"].to_numpy(), mark_bin)
    return frame


def daily_long_ratios(con: duckdb_lib.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date,
                      variant: str) -> pd.DataFrame:
    """Per day: the variant's long ratio Σlong / Σ(long+short) and its notional-weighted pre-funding share,
    beside the daily mean settled funding (8h-equivalent) and the funding-implied ratio 0.5 + 0.3·tanh(1000·f).

    Columns: day, long_ratio, long_ratio_pre_funding, funding_rate_8h, implied_long_ratio.
    """
    _ensure_read_tables(con)
    frame = con.execute("""
        WITH est AS (
            SELECT day, sum(long_usd) / nullif(sum(long_usd + short_usd), 0) AS long_ratio,
                   sum(long_share_pre_funding * (long_usd + short_usd)) / nullif(sum(long_usd + short_usd), 0)
                       AS long_ratio_pre_funding
            FROM model.position_distribution
            WHERE symbol = ? AND variant = ? AND day BETWEEN ? AND ?
            GROUP BY day),
        funding AS (
            SELECT CAST(funding_time AS DATE) AS day, avg(funding_rate_8h) AS funding_rate_8h
            FROM raw.funding_rates
            WHERE symbol = ? AND funding_time >= ? AND funding_time < ?
            GROUP BY 1)
        SELECT est.day, est.long_ratio, est.long_ratio_pre_funding, funding.funding_rate_8h
        FROM est LEFT JOIN funding USING (day) ORDER BY est.day""",
        [symbol, variant, start, end, symbol, start, end + dt.timedelta(days=1)]).df()
    frame["implied_long_ratio"] = scoring.funding_implied_long_ratio(frame["funding_rate_8h"].astype("float64"))
    return frame


def funding_correlation(con: duckdb_lib.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date,
                        variant: str = NON_CIRCULAR_VARIANT) -> tuple[scoring.Correlation, pd.DataFrame]:
    """Pearson r between a variant's daily pre-funding long ratio and the funding-implied ratio (§9.1-§9.2).

    The pre-funding share is what the split looked like before the funding step, so the correlation never
    measures the model's own construction; for the `ofi` variant it equals its final split.
    """
    daily = daily_long_ratios(con, symbol, start, end, variant)
    return scoring.pearson(daily["long_ratio_pre_funding"].to_numpy(dtype=np.float64),
                           daily["implied_long_ratio"].to_numpy(dtype=np.float64)), daily


def data_quality(con: duckdb_lib.DuckDBPyConnection, symbol: str, days: list[dt.date]) -> dict:
    """Share of the raw input present for the graded days, scored over what the configuration needs
    (warehouse/data_quality.py: aggTrades only when LIQ_PROFILE_SOURCE=aggTrades)."""
    from liq_pipeline.warehouse.data_quality import data_quality as score_inputs

    return score_inputs(con, symbol, days)


def has_ground_truth(con: duckdb_lib.DuckDBPyConnection, symbol: str) -> bool:
    _ensure_read_tables(con)
    return bool(con.execute("SELECT count(*) > 0 FROM truth.positions WHERE symbol = ?", [symbol]).fetchone()[0])


def _true_open_positions(con, symbol: str, day: dt.date) -> pd.DataFrame:
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    return con.execute("""
        SELECT side, entry_price, quantity, leverage, isolated_margin_usd, liq_price,
               quantity * entry_price AS notional_usd
        FROM truth.positions
        WHERE symbol = ? AND open_time < ? AND (close_time IS NULL OR close_time >= ?)""",
        [symbol, end, end]).df()


def _side_bin_weights(con, sql: str, params: list) -> pd.DataFrame:
    return con.execute(f"SELECT side, bin_id, sum(notional_usd) AS notional_usd FROM ({sql}) GROUP BY ALL",
                       params).df()


def _overlaps(est: pd.DataFrame, true: pd.DataFrame) -> dict:
    """Overlap on (side, bin) jointly and per side (nan when a side is empty)."""
    merged = est.merge(true, on=["side", "bin_id"], how="outer", suffixes=("_est", "_true")).fillna(
        {"notional_usd_est": 0.0, "notional_usd_true": 0.0})
    out = {"overlap": scoring.distribution_overlap(merged["notional_usd_est"].to_numpy(),
                                                   merged["notional_usd_true"].to_numpy())}
    for side in ("long", "short"):
        part = merged[merged["side"] == side]
        out[f"overlap_{side}"] = scoring.distribution_overlap(part["notional_usd_est"].to_numpy(),
                                                              part["notional_usd_true"].to_numpy())
    return out


def ground_truth_accuracy(con: duckdb_lib.DuckDBPyConnection, symbol: str, day: dt.date,
                          variants: tuple[str, ...] = VARIANTS, params: ModelParams = MODEL) -> list[dict]:
    """Per variant, how the estimate of day D compares with the simulator's positions open at the end of D.

    True liquidation map: positions with open_time < D+1 and (close_time NULL or ≥ D+1), notional at entry
    (quantity × entry_price) binned at their exact `liq_price` on grid_for(symbol). Estimated: the
    variant's model.liquidation_levels of D, and the end-of-day snapshot of model.liquidation_heatmap.
    Figures: overlap 1 − ½Σ|p_est − p_true| (joint and per side), long-share error |est − true| of notional
    (estimate from the position distribution), and the mean absolute relative error of the simplified
    formula (flat MMR 0.4 %, liquidation-math.md §6) and of our exact tiered formula against the truth.
    An empty list when the truth has no open position that day.
    """
    _ensure_read_tables(con)
    positions = _true_open_positions(con, symbol, day)
    if positions.empty:
        return []
    grid = grid_for(symbol, params)
    priced = positions[positions["liq_price"] > 0]
    true_map = pd.DataFrame({"side": priced["side"].to_numpy(dtype=str),
                             "bin_id": grid.bin_id(priced["liq_price"].to_numpy()),
                             "notional_usd": priced["notional_usd"].to_numpy()}
                            ).groupby(["side", "bin_id"], as_index=False)["notional_usd"].sum()
    notional = positions["notional_usd"].to_numpy()
    true_long_share = float(notional[positions["side"].to_numpy(dtype=str) == "long"].sum() / notional.sum())

    side = np.where(priced["side"].to_numpy(dtype=str) == "long", margin.LONG, margin.SHORT)
    simplified = margin.simplified_liquidation_price(side, priced["entry_price"].to_numpy(),
                                                     priced["leverage"].to_numpy(), SIMPLIFIED_MMR)
    simplified_mare = scoring.mean_abs_relative_error(simplified, priced["liq_price"].to_numpy())
    try:
        table = margin.table_for(symbol, day).table
        exact = margin.tiered_liquidation_price(side, priced["quantity"].to_numpy(), priced["entry_price"].to_numpy(),
                                                priced["isolated_margin_usd"].to_numpy(), table).price
        exact_mare = scoring.mean_abs_relative_error(exact, priced["liq_price"].to_numpy())
    except margin.BracketError:
        exact_mare = float("nan")

    shares = con.execute("""SELECT variant, sum(long_usd) / nullif(sum(long_usd + short_usd), 0)
                            FROM model.position_distribution WHERE symbol = ? AND day = ? GROUP BY variant""",
                         [symbol, day]).fetchall()
    est_share = {v: s for v, s in shares}
    rows = []
    for variant in variants:
        levels = _side_bin_weights(con, """SELECT side, bin_id, notional_usd FROM model.liquidation_levels
                                           WHERE symbol = ? AND day = ? AND variant = ?""", [symbol, day, variant])
        heat = _side_bin_weights(con, """
            SELECT side, bin_id, notional_usd FROM model.liquidation_heatmap
            WHERE symbol = ? AND day = ? AND variant = ? AND snapshot_time = (
                SELECT max(snapshot_time) FROM model.liquidation_heatmap WHERE symbol = ? AND day = ? AND variant = ?)""",
            [symbol, day, variant, symbol, day, variant])
        if levels.empty and heat.empty and variant not in est_share:
            continue
        lv = _overlaps(levels, true_map)
        hm = _overlaps(heat, true_map) if not heat.empty else {}
        share = est_share.get(variant)
        rows.append({
            "symbol": symbol, "day": day.isoformat(), "variant": variant,
            "true_positions": int(len(positions)), "true_notional_usd": float(notional.sum()),
            "overlap_levels": lv["overlap"], "overlap_levels_long": lv["overlap_long"],
            "overlap_levels_short": lv["overlap_short"],
            "overlap_heatmap_eod": hm.get("overlap", float("nan")),
            "long_share_est": float(share) if share is not None else float("nan"),
            "long_share_true": true_long_share,
            "long_share_error": abs(float(share) - true_long_share) if share is not None else float("nan"),
            "simplified_formula_mare": simplified_mare, "exact_formula_mare": exact_mare,
        })
    return rows


@dataclass
class BacktestResult:
    """Scores of one variant's heatmap against realized liquidations, and the per-bar table behind them."""

    symbol: str
    variant: str
    start: dt.date
    end: dt.date
    bar_minutes: int
    realized_source: str
    metrics: dict = field(default_factory=dict)
    bars: pd.DataFrame = field(default_factory=pd.DataFrame)


def _finest_interval(con, symbol: str, start: dt.datetime, end: dt.datetime) -> str | None:
    rows = con.execute("""SELECT DISTINCT interval FROM raw.mark_price_klines
                          WHERE symbol = ? AND open_time >= ? AND open_time < ?""", [symbol, start, end]).fetchall()
    known = [r[0] for r in rows if r[0] in KLINE_INTERVAL_MS]
    return min(known, key=KLINE_INTERVAL_MS.get) if known else None


def realized_per_bar(con: duckdb_lib.DuckDBPyConnection, symbol: str, start: dt.datetime, end: dt.datetime,
                     bar_minutes: int, source: str = "auto") -> tuple[str, pd.DataFrame]:
    """Realized liquidation notional per bar and side: (source used, frame bar_start, real_long, real_short).

    Sources, in the order `auto` tries them: `truth` (simulator, complete), `events`
    (raw.realized_liquidations from every source, one row per (time, side, price, quantity): the live
    stream is sampled, so a lower bound), `bars` (raw.realized_liquidation_bars; a bar repeated by two
    files counts once). `none` when no source has a row in [start, end).
    """
    _ensure_read_tables(con)
    bucket = f"time_bucket(INTERVAL '{int(bar_minutes)} minutes', {{t}})"
    queries = {
        "truth": f"""SELECT {bucket.format(t='liq_time')} AS bar_start,
                            sum(notional_usd) FILTER (WHERE side = 'long') AS real_long,
                            sum(notional_usd) FILTER (WHERE side = 'short') AS real_short
                     FROM truth.liquidations WHERE symbol = $1 AND liq_time >= $2 AND liq_time < $3 GROUP BY 1""",
        "events": f"""SELECT {bucket.format(t='trade_time')} AS bar_start,
                             sum(notional_usd) FILTER (WHERE side = 'long') AS real_long,
                             sum(notional_usd) FILTER (WHERE side = 'short') AS real_short
                      FROM (SELECT DISTINCT ON (trade_time, side, price, quantity) trade_time, side, notional_usd
                            FROM raw.realized_liquidations
                            WHERE symbol = $1 AND trade_time >= $2 AND trade_time < $3)
                      GROUP BY 1""",
        "bars": f"""SELECT {bucket.format(t='bar_start')} AS bar_start, sum(long_usd) AS real_long,
                           sum(short_usd) AS real_short
                    FROM (SELECT bar_start, max(long_usd) AS long_usd, max(short_usd) AS short_usd
                          FROM raw.realized_liquidation_bars
                          WHERE symbol = $1 AND bar_start >= $2 AND bar_start < $3 GROUP BY bar_start)
                    GROUP BY 1""",
    }
    order = list(queries) if source == "auto" else [source]
    for name in order:
        if name not in queries:
            raise ValueError(f"realized source must be auto, truth, events or bars, not {source!r}")
        frame = con.execute(queries[name], [symbol, start, end]).df()
        if not frame.empty:
            return name, frame.fillna({"real_long": 0.0, "real_short": 0.0})
    return "none", pd.DataFrame({"bar_start": pd.Series([], dtype="datetime64[us]"), "real_long": [], "real_short": []})


def backtest(con: duckdb_lib.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date, variant: str = "hybrid",
             bar_minutes: int = 60, top_k: int | None = None, realized_source: str = "auto",
             params: ModelParams = MODEL) -> BacktestResult:
    """Score a variant's heatmap against realized liquidations over the days start..end (inclusive).

    Per bar (default 1 h): the prediction is the latest model.liquidation_heatmap snapshot at or before
    the bar start (at most MAX_SNAPSHOT_AGE old), summed per side over the levels whose price lies in the
    bar's mark-price range [min low, max high] (raw.mark_price_klines, finest interval stored); the
    realized value is what realized_per_bar reports. Scores over the (bar, side) cells:
    Spearman ρ (pooled and per side), precision/recall of the top-K cells (K = 10 % of the cells unless
    given; false positives counted), and the same for the naive baseline (each side's snapshot total placed
    at the bar's opening mark price and spread by the leverage mix with tier-1 levels, no volume profile),
    with lift = precision / baseline precision and Δρ = ρ − baseline ρ.
    """
    if bar_minutes <= 0 or 1440 % bar_minutes:
        raise ValueError(f"bar length must divide a day into whole bars, got {bar_minutes} minutes")
    if end < start:
        raise ValueError(f"backtest end {end} is before start {start}")
    _ensure_read_tables(con)
    t0 = dt.datetime.combine(start, dt.time())
    t1 = dt.datetime.combine(end + dt.timedelta(days=1), dt.time())
    result = BacktestResult(symbol, variant, start, end, bar_minutes, "none")
    interval = _finest_interval(con, symbol, t0, t1)
    if interval is None:
        result.metrics = {"status": "no mark-price klines in the range"}
        return result
    bars = con.execute(f"""
        WITH marks AS (
            SELECT time_bucket(INTERVAL '{int(bar_minutes)} minutes', open_time) AS bar_start,
                   arg_min(open, open_time) AS mark_open, max(high) AS high, min(low) AS low
            FROM raw.mark_price_klines
            WHERE symbol = $symbol AND interval = $interval AND open_time >= $t0 AND open_time < $t1
            GROUP BY 1),
        snaps AS (
            SELECT DISTINCT snapshot_time FROM model.liquidation_heatmap
            WHERE symbol = $symbol AND variant = $variant AND snapshot_time < $t1),
        bar_snap AS (
            SELECT m.*, CASE WHEN m.bar_start - s.snapshot_time <= $max_age THEN s.snapshot_time END AS snapshot_time
            FROM marks m ASOF LEFT JOIN snaps s ON m.bar_start >= s.snapshot_time),
        pred AS (
            SELECT b.bar_start,
                   sum(h.notional_usd) FILTER (WHERE h.side = 'long' AND h.price BETWEEN b.low AND b.high) AS pred_long,
                   sum(h.notional_usd) FILTER (WHERE h.side = 'short' AND h.price BETWEEN b.low AND b.high) AS pred_short,
                   sum(h.notional_usd) FILTER (WHERE h.side = 'long') AS total_long,
                   sum(h.notional_usd) FILTER (WHERE h.side = 'short') AS total_short
            FROM bar_snap b
            JOIN model.liquidation_heatmap h
              ON h.symbol = $symbol AND h.variant = $variant AND h.snapshot_time = b.snapshot_time
            GROUP BY b.bar_start)
        SELECT b.bar_start, b.mark_open, b.high, b.low, b.snapshot_time,
               coalesce(p.pred_long, 0) AS pred_long, coalesce(p.pred_short, 0) AS pred_short,
               coalesce(p.total_long, 0) AS total_long, coalesce(p.total_short, 0) AS total_short
        FROM bar_snap b LEFT JOIN pred p USING (bar_start)
        ORDER BY b.bar_start""",
        {"symbol": symbol, "interval": interval, "t0": t0, "t1": t1, "variant": variant,
         "max_age": MAX_SNAPSHOT_AGE}).df()
    source, realized = realized_per_bar(con, symbol, t0, t1, bar_minutes, realized_source)
    result.realized_source = source
    bars["bar_start"] = bars["bar_start"].astype("datetime64[us]")
    realized["bar_start"] = realized["bar_start"].astype("datetime64[us]")
    bars = bars.merge(realized, on="bar_start", how="left").fillna({"real_long": 0.0, "real_short": 0.0})
    scored = bars[bars["snapshot_time"].notna()].reset_index(drop=True)
    try:
        mmr = float(margin.table_for(symbol, start).table.mmr[0])
    except margin.BracketError:
        mmr = SIMPLIFIED_MMR
    naive_long, naive_short = scoring.naive_baseline_in_range(
        scored["mark_open"].to_numpy(dtype=np.float64), scored["total_long"].to_numpy(dtype=np.float64),
        scored["total_short"].to_numpy(dtype=np.float64), scored["low"].to_numpy(dtype=np.float64),
        scored["high"].to_numpy(dtype=np.float64), np.asarray(params.leverages), np.asarray(params.leverage_weights), mmr)
    scored["naive_long"], scored["naive_short"] = naive_long, naive_short
    result.bars = scored
    realized_total = float(scored["real_long"].sum() + scored["real_short"].sum())
    metrics: dict = {
        "bars": int(len(bars)), "bars_scored": int(len(scored)),
        "bars_without_snapshot": int(len(bars) - len(scored)), "mark_interval": interval,
        "realized_source": source, "realized_long_usd": float(scored["real_long"].sum()),
        "realized_short_usd": float(scored["real_short"].sum()),
        "predicted_in_range_usd": float(scored["pred_long"].sum() + scored["pred_short"].sum()),
    }
    if source == "events":
        metrics["note"] = "forceOrder stream totals are a lower bound (one event per symbol per second)"
    if scored.empty or realized_total <= 0:
        metrics["status"] = "no realized liquidations in the scored bars" if not scored.empty else "no bars with a snapshot"
        result.metrics = metrics
        return result
    pred = np.concatenate([scored["pred_long"], scored["pred_short"]]).astype(np.float64)
    naive = np.concatenate([naive_long, naive_short])
    real = np.concatenate([scored["real_long"], scored["real_short"]]).astype(np.float64)
    k = top_k or max(1, math.ceil(TOP_K_SHARE * pred.size))
    model_rho = scoring.spearman(pred, real)
    naive_rho = scoring.spearman(naive, real)
    model_top = scoring.top_k_precision_recall(pred, real, k)
    naive_top = scoring.top_k_precision_recall(naive, real, k)
    metrics.update({
        "status": "scored", "cells": int(pred.size), "top_k": int(k),
        "spearman": model_rho.as_dict(),
        "spearman_long": scoring.spearman(scored["pred_long"].to_numpy(np.float64), scored["real_long"].to_numpy(np.float64)).as_dict(),
        "spearman_short": scoring.spearman(scored["pred_short"].to_numpy(np.float64), scored["real_short"].to_numpy(np.float64)).as_dict(),
        "top_k_model": model_top.as_dict(), "naive_spearman": naive_rho.as_dict(), "top_k_naive": naive_top.as_dict(),
        "lift_precision": scoring.lift(model_top.precision, naive_top.precision),
        "lift_notional_recall": scoring.lift(model_top.notional_recall, naive_top.notional_recall),
        "delta_spearman": (model_rho.r - naive_rho.r) if model_rho.r is not None and naive_rho.r is not None else None,
    })
    result.metrics = metrics
    return result


# =====================================================================================================
# Monthly report (no Dagster)
# =====================================================================================================

def month_bounds(month_start: dt.date) -> tuple[dt.date, dt.date]:
    first = month_start.replace(day=1)
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def _mean(values) -> float | None:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else None


def symbol_report(con: duckdb_lib.DuckDBPyConnection, symbol: str, month_start: dt.date,
                  variants: tuple[str, ...] = VARIANTS, params: ModelParams = MODEL,
                  run_backtest: bool = True) -> dict:
    """Every test of one symbol over one calendar month, per variant, with the grade (liquidation-math.md §9)."""
    first, last = month_bounds(month_start)
    _ensure_read_tables(con)
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
        "daily": [{"day": _day_str(d.day), "long_ratio": _finite_or_none(d.long_ratio),
                   "funding_rate_8h": _finite_or_none(d.funding_rate_8h),
                   "implied_long_ratio": _finite_or_none(d.implied_long_ratio)} for d in check_daily.itertuples()],
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
            "directional": {"levels": int(len(v_dir)), "accuracy": _finite_or_none(accuracy),
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


def build_report(con: duckdb_lib.DuckDBPyConnection, month_start: dt.date, symbols: list[str],
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
                             "value": _finite_or_none(value), "verdict": verdict, "detail": None})
    dq = sym.get("data_quality") or {}
    for metric, value in dq.items():
        rows.append({"symbol": symbol, "day": first, "variant": "all", "test": "data_quality", "metric": metric,
                     "value": _finite_or_none(value), "verdict": None, "detail": None})
    check = sym.get("funding_correlation_check")
    if check:
        rows.append({"symbol": symbol, "day": first, "variant": check["variant_tested"], "test": "funding_correlation_check",
                     "metric": "r", "value": check["r"], "verdict": check["verdict"], "detail": check["reason"] or None})
    return pd.DataFrame(rows, columns=["symbol", "day", "variant", "test", "metric", "value", "verdict", "detail"])


def store_report(con: duckdb_lib.DuckDBPyConnection, report: dict, reports_dir: Path) -> Path:
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
        return _finite_or_none(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean_for_json(value):
    """Replace nan/inf by None everywhere (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _clean_for_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_for_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return _finite_or_none(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _fmt(value, pattern: str = "{:.3f}") -> str:
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
            f"Data quality {_fmt(dq.get('score'), '{:.1%}')} (klines {_fmt(dq.get('klines'), '{:.1%}')}, mark klines "
            f"{_fmt(dq.get('mark_price_klines'), '{:.1%}')}, OI {_fmt(dq.get('open_interest'), '{:.1%}')}, aggTrades ids "
            f"{_fmt(dq.get('agg_trades'), '{:.2%}')}).",
            f"Funding correlation (variant `{check['variant_tested']}`, {check['why']}): r = {_fmt(check['r'])}, "
            f"p = {_fmt(check['p'], '{:.2g}')}, n = {check['n']}: **{check['verdict']}** {check['reason']}",
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
                f"| {variant} | **{letter}** | {g['total']:.1f} | {_fmt(v['funding_correlation_pre_funding']['r'])} | "
                f"{_fmt(oi['mean_error_pct'], '{:.3f}')} / {_fmt(oi['max_error_pct'], '{:.3f}')} | "
                f"{_fmt(d['accuracy'], '{:.2%}')} | {_fmt(gt.get('overlap_levels'))} | {_fmt(gt.get('long_share_error'))} | "
                f"{_fmt((bt.get('spearman') or {}).get('r'))} ({_fmt((bt.get('naive_spearman') or {}).get('r'))}) | "
                f"{_fmt(top.get('precision'), '{:.2f}')} ({_fmt(naive.get('precision'), '{:.2f}')}) | "
                f"{_fmt(bt.get('lift_precision'), '{:.2f}')} / {_fmt(bt.get('lift_notional_recall'), '{:.2f}')} |")
        some = next(iter(sym["variants"].values()))
        if "ground_truth" in some:
            lines += ["", f"Simplified formula vs exact truth: mean abs relative error "
                          f"{_fmt(some['ground_truth']['simplified_formula_mare'], '{:.4%}')}; our exact formula "
                          f"{_fmt(some['ground_truth']['exact_formula_mare'], '{:.2e}')}."]
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


# =====================================================================================================
# Dagster layer
# =====================================================================================================

def _check_targets(context, con, table: str) -> tuple[list[tuple[str, dt.date]], str]:
    """The (symbol, day) pairs a check evaluates: the run's partitions, or, when the check runs without a
    partition (launched alone from the UI), the latest day of every symbol in `table`; the note says which."""
    if context.has_partition_key or context.has_partition_key_range:
        return partitions.symbol_days(context), ""
    rows = con.execute(f"SELECT symbol, max(day) FROM {table} GROUP BY symbol ORDER BY symbol").fetchall()
    return [(s, d) for s, d in rows if d is not None], (
        "run without a partition: evaluated the latest materialized day of every symbol")


def _md_table(frame: pd.DataFrame, float_format: str = "{:,.4f}") -> str:
    if frame.empty:
        return "(no rows)"
    cols = list(frame.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        cells = [float_format.format(v) if isinstance(v, float) and math.isfinite(v) else str(v) for v in row]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


@dg.asset_check(asset=dg.AssetKey("position_distribution"), description=(
    "|Σ(long + short) − OI| / OI < 1 % for every variant (liquidation-math.md §9.3)."))
def oi_is_conserved(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        targets, note = _check_targets(context, con, "model.position_distribution")
        frames = [oi_conservation(con, s, d).assign(symbol=s, day=d.isoformat()) for s, d in targets]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["variant", "estimated_usd", "oi_usd", "error_pct", "symbol", "day"])
    missing_oi = table[table["error_pct"].isna()]
    worst = float(table["error_pct"].max()) if table["error_pct"].notna().any() else None
    failing = table[table["error_pct"] >= OI_TOLERANCE_PCT]
    passed = not table.empty and failing.empty and missing_oi.empty
    if table.empty:
        description = "no position distribution rows for the partition"
    elif not missing_oi.empty:
        description = f"actual OI missing for {len(missing_oi)} variant-days: conservation cannot be verified"
    else:
        description = f"max error {worst:.4f} % (tolerance {OI_TOLERANCE_PCT} %)"
    return dg.AssetCheckResult(
        passed=passed, severity=dg.AssetCheckSeverity.ERROR if not failing.empty else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={**({"max_error_pct": dg.MetadataValue.float(worst)} if worst is not None else {}),
                  "tolerance_pct": OI_TOLERANCE_PCT, "note": note or "partition of the run",
                  "per_variant": dg.MetadataValue.md(_md_table(table[["symbol", "day", "variant", "estimated_usd",
                                                                       "oi_usd", "error_pct"]]))})


def _directional_check(context, duckdb: DuckDBResource, side: str) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        targets, note = _check_targets(context, con, "model.liquidation_levels")
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
    return dg.AssetCheckResult(
        passed=passed,
        # A few stray levels are a consumption bug worth a warning; many mean the picture is wrong.
        severity=dg.AssetCheckSeverity.WARN if levels.empty or accuracy >= 0.99 else dg.AssetCheckSeverity.ERROR,
        description=(f"no {side} levels for the partition" if levels.empty else
                     f"{len(wrong)} of {len(levels)} {side} levels not {where} the mark (accuracy {accuracy:.2%})"),
        metadata={
            **({"accuracy": dg.MetadataValue.float(accuracy)} if math.isfinite(accuracy) else {}),
            "wrong_levels": int(len(wrong)),
            "wrong_notional_usd": float(wrong["notional_usd"].sum()) if not wrong.empty else 0.0,
            "rule": f"{side} level's grid bin {'<=' if side == 'long' else '>='} the mark price's bin "
                    "(mark = model.position_signals.mark_price at the as-of time)",
            "note": note or "partition of the run",
            "per_variant": dg.MetadataValue.md(_md_table(summary)),
            "worst_levels": dg.MetadataValue.md(_md_table(
                wrong.sort_values("notional_usd", ascending=False).head(10)[
                    ["symbol", "day", "variant", "price", "notional_usd", "mark_price"]])),
        })


@dg.asset_check(asset=dg.AssetKey("liquidation_levels"), description=(
    "Every long liquidation level lies below the mark price at the as-of time (liquidation-math.md §9.4)."))
def longs_liquidate_below_mark(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    return _directional_check(context, duckdb, "long")


@dg.asset_check(asset=dg.AssetKey("liquidation_levels"), description=(
    "Every short liquidation level lies above the mark price at the as-of time (liquidation-math.md §9.4)."))
def shorts_liquidate_above_mark(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    return _directional_check(context, duckdb, "short")


@dg.asset_check(asset=dg.AssetKey("position_distribution"), description=(
    "Pearson r between the funding-free (ofi) daily long ratio and 0.5 + 0.3·tanh(1000·f) over the 30 days "
    "ending at the partition day (liquidation-math.md §9.1-§9.2)."))
def long_ratio_tracks_funding(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        targets, note = _check_targets(context, con, "model.position_distribution")
        results = []
        for symbol in sorted({s for s, _ in targets}):
            end = max(d for s, d in targets if s == symbol)
            corr, daily = funding_correlation(con, symbol, end - dt.timedelta(days=FUNDING_WINDOW_DAYS - 1), end)
            results.append((symbol, end, corr, daily))
    verdicts = [c.verdict for _, _, c, _ in results]
    conclusive = [v for v in verdicts if v != scoring.INCONCLUSIVE]
    # Inconclusive (constant funding, too few days) is neither pass nor fail: it passes as a warning and
    # says so, so that a flat-funding month does not page anyone nor pretend to validate the model.
    passed = all(v in (scoring.PASS, scoring.MODERATE) for v in conclusive)
    overall = (scoring.INCONCLUSIVE if not conclusive else
               scoring.FAIL if scoring.FAIL in conclusive else
               scoring.MODERATE if scoring.MODERATE in conclusive else scoring.PASS)
    rows = pd.DataFrame([{"symbol": s, "window_end": e.isoformat(), "r": c.r, "p": c.p, "n": c.n,
                          "verdict": c.verdict, "reason": c.reason} for s, e, c, _ in results])
    return dg.AssetCheckResult(
        passed=passed, severity=dg.AssetCheckSeverity.WARN,
        description=f"{overall}: " + "; ".join(f"{s} r={_fmt(c.r)} ({c.verdict})" for s, _, c, _ in results),
        metadata={
            "verdict": overall, "variant_tested": NON_CIRCULAR_VARIANT,
            "why_this_variant": "the ofi split uses no funding input; correlating a split that used funding "
                                "(funding, hybrid) with funding would be circular (liquidation-math.md §9.2)",
            "window_days": FUNDING_WINDOW_DAYS, "note": note or "window ends at the run's partition day",
            "results": dg.MetadataValue.md(_md_table(rows) if not rows.empty else "(no data)"),
            "daily": dg.MetadataValue.json({s: [{"day": _day_str(r.day), "long_ratio": _finite_or_none(r.long_ratio),
                                                 "funding_rate_8h": _finite_or_none(r.funding_rate_8h)}
                                                for r in daily.itertuples()] for s, _, _, daily in results}),
        })


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
            report = _clean_for_json(build_report(con, month, config.configured_symbols()))
            paths.append(store_report(con, report, config.reports_dir()))
            markdown.append(report_markdown(report))
            png = funding_picture_png(report)
            if png:
                markdown.append(markdown_image(png, f"funding-free long ratio vs funding-implied ratio, {report['month']}"))
    grades = {f"{s}/{v}": e["grade"]["letter"] for s, sym in report["symbols"].items()
              for v, e in sym.get("variants", {}).items()}
    return dg.MaterializeResult(metadata={
        "report": dg.MetadataValue.md("\n\n".join(markdown)),
        "grades": dg.MetadataValue.json(grades),
        "json_path": dg.MetadataValue.path(str(paths[-1])),
        "months": ", ".join(m.strftime("%Y-%m") for m in months),
    })


@dg.asset_check(asset=validation_report, description=(
    "The hybrid variant is at least as accurate as the naive volume_5050 one: ground-truth overlap when the "
    "source is simulated, else backtest Spearman ρ; inconclusive without either."))
def hybrid_beats_volume_baseline(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    months = sorted({dt.date.fromisoformat(k) for k in context.partition_keys}) if context.has_partition_key or \
        context.has_partition_key_range else []
    with duckdb.get_connection() as con:
        ensure_tables(con, "model.validation_results")
        if not months:
            latest = con.execute("SELECT max(day) FROM model.validation_results").fetchone()[0]
            months = [latest] if latest else []
        frame = con.execute("""
            SELECT symbol, day, variant, test, metric, value FROM model.validation_results
            WHERE day IN (SELECT unnest(?::DATE[])) AND variant IN ('hybrid', 'volume_5050')
              AND ((test = 'ground_truth' AND metric = 'overlap_levels') OR (test = 'backtest' AND metric = 'spearman.r'))""",
            [months]).df()
    rows, failed = [], []
    for (symbol, day), part in frame.groupby(["symbol", "day"]):
        for test, metric in (("ground_truth", "overlap_levels"), ("backtest", "spearman.r")):
            vals = part[(part["test"] == test) & (part["metric"] == metric)].set_index("variant")["value"]
            if {"hybrid", "volume_5050"} <= set(vals.index) and vals.notna().all():
                better = vals["hybrid"] >= vals["volume_5050"] - NOT_WORSE_MARGIN
                rows.append({"symbol": symbol, "month": str(day)[:7], "measure": f"{test}.{metric}",
                             "hybrid": float(vals["hybrid"]), "volume_5050": float(vals["volume_5050"]),
                             "hybrid_not_worse": bool(better)})
                if not better:
                    failed.append(f"{symbol} {str(day)[:7]}")
                break
    table = pd.DataFrame(rows)
    if table.empty:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   description="inconclusive: neither ground truth nor realized liquidations to compare",
                                   metadata={"verdict": scoring.INCONCLUSIVE})
    return dg.AssetCheckResult(
        passed=not failed, severity=dg.AssetCheckSeverity.WARN,
        description=("hybrid worse than volume_5050 for " + ", ".join(failed)) if failed else
        "hybrid at least as accurate as volume_5050 everywhere",
        metadata={"verdict": "fail" if failed else "pass", "margin": NOT_WORSE_MARGIN,
                  "rule": f"fails when hybrid's score is below volume_5050's by more than {NOT_WORSE_MARGIN}",
                  "comparison": dg.MetadataValue.md(_md_table(table))})


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
        "imports": dg.MetadataValue.md(_md_table(table) if not table.empty else
                                       f"no files in {folder}: drop forceOrder JSON lines, liquidationSnapshot "
                                       "CSVs or timestamp,long_usd,short_usd CSVs there"),
    })
