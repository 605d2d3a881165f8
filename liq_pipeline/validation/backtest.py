"""The realized-liquidation backtest: a heatmap's prediction per bar against what was liquidated, beside
three trivial predictors that use no map at all.

Two layers. `score_backtest` (and the steps it chains: `bar_frame`, `attach_predictions`,
`attach_realized`, `attach_baselines`, `score_bars`) works on plain frames, no warehouse, no Dagster: give
it any heatmap, candles and realized per-bar totals. `backtest` loads those frames for a symbol and range
from the warehouse and calls it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.config import KLINE_INTERVAL_MS, MODEL, ModelParams
from liq_pipeline.model import margin, scoring, variants
from liq_pipeline.warehouse.readers import maps, marks, open_interest
from liq_pipeline.warehouse.readers import realized as realized_readers
from liq_pipeline.warehouse.schema import ensure_tables

#: A heatmap snapshot older than this at a bar's start does not predict that bar.
MAX_SNAPSHOT_AGE = dt.timedelta(days=1)
#: Share of (bar, side) cells flagged by the top-K test.
TOP_K_SHARE = 0.10
#: Flat MMR used for the leverage-only baseline when the symbol has no bracket table.
FALLBACK_MMR = 0.004
#: The trivial predictors, strongest first is decided by the data (see `score_bars`).
BASELINES = ("leverage_only", "bar_range", "side_excursion")
#: Price series the bars are cut from, finest first: mark-price candles, else last-price candles (flagged).
PRICE_TABLES = (("raw.mark_price_klines", "mark"), ("raw.klines", "last"))

_READ_TABLES = ("raw.klines", "raw.mark_price_klines", "raw.open_interest", "raw.realized_liquidations",
                "raw.realized_liquidation_bars", "truth.liquidations", "model.liquidation_heatmap")


class BacktestInputError(ValueError):
    """The backtest cannot run on these inputs (unknown symbol, empty range, bars finer than the candles)."""


@dataclass
class BacktestResult:
    """Scores of one heatmap against realized liquidations, and the per-bar table behind them."""

    symbol: str
    variant: str
    start: dt.date
    end: dt.date
    bar_minutes: int
    realized_source: str
    metrics: dict = field(default_factory=dict)
    bars: pd.DataFrame = field(default_factory=pd.DataFrame)


# =====================================================================================================
# Plain functions on frames
# =====================================================================================================

def bar_frame(candles: pd.DataFrame, bar_minutes: int, candle_minutes: int | None = None) -> pd.DataFrame:
    """Cut candles into bars: bar_start, open (first candle's open), high (max), low (min), candles (count),
    candle_minutes and price_series of the candles used.

    `candles` has open_time (naive UTC), open, high, low, and either a column `interval_minutes` (candles
    of several intervals mixed) or one interval given as `candle_minutes`; an optional `series` column
    ('mark' or 'last'). Each bar uses the finest series available for it: mark candles before last-price
    candles, then the shortest interval with a candle in the bar. A bar shorter than that interval, or
    not a whole number of its candles, cannot be priced from them: BacktestInputError naming both
    intervals (never a silent drop or a bar scored against a longer candle's range).
    """
    if bar_minutes <= 0 or 1440 % bar_minutes:
        raise BacktestInputError(f"bar length must divide a day into whole bars, got {bar_minutes} minutes")
    frame = candles.copy()
    if "interval_minutes" not in frame:
        if candle_minutes is None:
            raise ValueError("candles need an interval_minutes column or candle_minutes")
        frame["interval_minutes"] = candle_minutes
    if "series" not in frame:
        frame["series"] = "mark"
    if frame.empty:
        return pd.DataFrame({"bar_start": pd.Series([], dtype="datetime64[us]"), "open": [], "high": [], "low": [],
                             "candles": pd.Series([], dtype="int64"), "candle_minutes": pd.Series([], dtype="int64"),
                             "price_series": pd.Series([], dtype=str)})
    with duckdb.connect() as mem:  # a private in-memory database: no shared state between callers
        mem.register("candles", frame[["open_time", "open", "high", "low", "interval_minutes", "series"]])
        bars = mem.execute(f"""
            WITH c AS (
                SELECT time_bucket(INTERVAL '{int(bar_minutes)} minutes', open_time::TIMESTAMP) AS bar_start, *,
                       CASE WHEN series = 'mark' THEN 0 ELSE 1 END AS series_rank
                FROM candles),
            pick AS (
                SELECT bar_start, arg_min(series, (series_rank, interval_minutes)) AS series,
                       arg_min(interval_minutes, (series_rank, interval_minutes)) AS interval_minutes
                FROM c GROUP BY bar_start)
            SELECT bar_start, arg_min(c.open, c.open_time) AS open, max(c.high) AS high, min(c.low) AS low,
                   count(*) AS candles, any_value(interval_minutes)::BIGINT AS candle_minutes,
                   any_value(series) AS price_series
            FROM c JOIN pick USING (bar_start, series, interval_minutes)
            GROUP BY bar_start ORDER BY bar_start""").df().astype({"bar_start": "datetime64[us]"})
    bad = bars[(bars["candle_minutes"] > bar_minutes) | (bar_minutes % bars["candle_minutes"] != 0)]
    if not bad.empty:
        finest = int(bad["candle_minutes"].iloc[0])
        raise BacktestInputError(
            f"{bar_minutes}-minute bars cannot be cut from the finest price candles available "
            f"({finest}-minute, from {bad['bar_start'].iloc[0]}): use bars of a multiple of {finest} minutes")
    return bars


def attach_predictions(bars: pd.DataFrame, heatmap: pd.DataFrame,
                       max_snapshot_age: dt.timedelta = MAX_SNAPSHOT_AGE) -> pd.DataFrame:
    """Add the map's prediction to each bar: the latest snapshot at or before the bar start (at most
    `max_snapshot_age` old), summed per side over its levels whose price lies in [low, high] of the bar.

    `heatmap` has snapshot_time, side ('long'/'short'), price (USD), notional_usd. Adds snapshot_time (NaT
    when no snapshot is recent enough), pred_long, pred_short (USD in range) and total_long, total_short
    (the snapshot's whole notional per side, which the leverage-only baseline redistributes).
    """
    with duckdb.connect() as mem:
        mem.register("bars", bars)
        mem.register("heatmap", heatmap)
        out = mem.execute("""
        WITH snaps AS (SELECT DISTINCT snapshot_time::TIMESTAMP AS snapshot_time FROM heatmap),
        bar_snap AS (
            SELECT b.*, CASE WHEN b.bar_start - s.snapshot_time <= $age THEN s.snapshot_time END AS snap
            FROM bars b ASOF LEFT JOIN snaps s ON b.bar_start >= s.snapshot_time),
        pred AS (
            SELECT b.bar_start,
                   sum(h.notional_usd) FILTER (WHERE h.side = 'long' AND h.price BETWEEN b.low AND b.high) AS pred_long,
                   sum(h.notional_usd) FILTER (WHERE h.side = 'short' AND h.price BETWEEN b.low AND b.high) AS pred_short,
                   sum(h.notional_usd) FILTER (WHERE h.side = 'long') AS total_long,
                   sum(h.notional_usd) FILTER (WHERE h.side = 'short') AS total_short
            FROM bar_snap b JOIN heatmap h ON h.snapshot_time::TIMESTAMP = b.snap
            GROUP BY b.bar_start)
        SELECT b.* EXCLUDE (snap), b.snap AS snapshot_time,
               coalesce(p.pred_long, 0) AS pred_long, coalesce(p.pred_short, 0) AS pred_short,
               coalesce(p.total_long, 0) AS total_long, coalesce(p.total_short, 0) AS total_short
        FROM bar_snap b LEFT JOIN pred p USING (bar_start) ORDER BY b.bar_start""",
            {"age": max_snapshot_age}).df()
    return out.astype({"bar_start": "datetime64[us]"})


def attach_realized(bars: pd.DataFrame, realized: pd.DataFrame) -> pd.DataFrame:
    """Add real_long, real_short (USD) from `realized` (bar_start, real_long, real_short on the same bar
    starts); bars without a row realized nothing."""
    r = realized[["bar_start", "real_long", "real_short"]].astype({"bar_start": "datetime64[us]"})
    return bars.merge(r, on="bar_start", how="left").fillna({"real_long": 0.0, "real_short": 0.0})


def attach_baselines(bars: pd.DataFrame, open_interest: pd.DataFrame | None = None,
                     leverages: tuple[float, ...] = MODEL.leverages,
                     leverage_weights: tuple[float, ...] = MODEL.leverage_weights,
                     mmr: float = FALLBACK_MMR) -> pd.DataFrame:
    """Add the three trivial predictors per bar and side, and oi_usd (USD, the last sample at or before the
    bar start; nan when unknown):

    - leverage_only (naive_long/short): each side's snapshot total placed at the bar's opening price and
      spread by the leverage mix at tier-1 liquidation distances (scoring.naive_baseline_in_range);
    - bar_range (range_long/short): (high − low) / open × OI, the same for both sides;
    - side_excursion (excursion_long/short): (open − low) / open × OI for longs, (high − open) / open × OI
      for shorts: how far price went against each side.
    Without any OI sample the two price predictors are left unscaled (OI = 1): Spearman only ranks them.
    """
    out = bars.copy()
    if open_interest is not None and not open_interest.empty:
        oi = open_interest[["time", "oi_usd"]].dropna().astype({"time": "datetime64[us]"}).sort_values("time")
        out = pd.merge_asof(out.sort_values("bar_start"), oi, left_on="bar_start", right_on="time",
                            direction="backward").drop(columns="time")
    else:
        out["oi_usd"] = np.nan
    o, hi, lo = (out[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low"))
    # Bars before the first OI sample take the first one, so every predictor ranks the same cells.
    scale = out["oi_usd"].ffill().bfill().fillna(1.0).to_numpy(dtype=np.float64)
    out["naive_long"], out["naive_short"] = scoring.naive_baseline_in_range(
        o, out["total_long"].to_numpy(dtype=np.float64), out["total_short"].to_numpy(dtype=np.float64), lo, hi,
        np.asarray(leverages, dtype=np.float64), np.asarray(leverage_weights, dtype=np.float64), mmr)
    out["range_long"] = out["range_short"] = (hi - lo) / o * scale
    out["excursion_long"] = (o - lo) / o * scale
    out["excursion_short"] = (hi - o) / o * scale
    return out


def _cells(bars: pd.DataFrame, prefix: str) -> np.ndarray:
    return np.concatenate([bars[f"{prefix}_long"], bars[f"{prefix}_short"]]).astype(np.float64)


_BASELINE_PREFIX = {"leverage_only": "naive", "bar_range": "range", "side_excursion": "excursion"}


def score_bars(bars: pd.DataFrame, top_k: int | None = None, top_share: float = TOP_K_SHARE) -> dict:
    """Score the map against realized liquidations and against the three baselines, over (bar, side) cells.

    `bars`: one row per bar with pred_, real_, naive_, range_, excursion_ {long, short} (attach_* above)
    and bar_start. Figures (all from ranks or shares, so they compare across symbols and sources):
    - `spearman`: ρ of predicted vs realized notional over the cells; `baselines.<name>.spearman` likewise;
    - `partial_spearman`: the map's ρ given bar range and side excursion (scoring.partial_spearman): what
      the map knows beyond how far price moved. ~0 means the map only restates the move;
    - `top_k_model`, `baselines.<name>.top_k`: the top K cells (K = top_share of the cells unless given):
      precision, recall, false positives, and `notional_recall`, the share of realized notional in them;
    - `realized_share_where_map_zero`: share of realized notional in cells where the map predicted 0;
    - `strongest_baseline` (highest ρ), `lift_spearman` = ρ − its ρ, `lift_notional_recall` = the map's
      top-K notional recall / the best baseline's;
    - `daily`: per day, ρ and partial ρ (for a bootstrap over days).
    Precision lift is not reported: when most bars liquidate something every flag is right.
    """
    pred, real = _cells(bars, "pred"), _cells(bars, "real")
    rng_c, exc_c = _cells(bars, "range"), _cells(bars, "excursion")
    k = top_k or max(1, math.ceil(top_share * pred.size))
    model_rho = scoring.spearman(pred, real)
    partial = scoring.partial_spearman(pred, real, [rng_c, exc_c])
    model_top = scoring.top_k_precision_recall(pred, real, k)
    base = {}
    for name in BASELINES:
        values = _cells(bars, _BASELINE_PREFIX[name])
        base[name] = {"spearman": scoring.spearman(values, real).as_dict(),
                      "top_k": scoring.top_k_precision_recall(values, real, k).as_dict()}
    ranked = [n for n in BASELINES if base[n]["spearman"]["r"] is not None]
    strongest = max(ranked, key=lambda n: base[n]["spearman"]["r"]) if ranked else None
    best_recall = max((base[n]["top_k"]["notional_recall"] for n in BASELINES
                       if math.isfinite(base[n]["top_k"]["notional_recall"])), default=float("nan"))
    total = real.sum()
    days = pd.to_datetime(bars["bar_start"]).dt.date.to_numpy()
    day_cells = np.concatenate([days, days])
    daily = []
    for day in sorted(set(days)):
        m = day_cells == day
        daily.append({"day": day.isoformat(), "spearman": scoring.spearman(pred[m], real[m]).r,
                      "partial_spearman": scoring.partial_spearman(pred[m], real[m], [rng_c[m], exc_c[m]]).r})
    return {
        "cells": int(pred.size), "top_k": int(k),
        "spearman": model_rho.as_dict(),
        "spearman_long": scoring.spearman(bars["pred_long"], bars["real_long"]).as_dict(),
        "spearman_short": scoring.spearman(bars["pred_short"], bars["real_short"]).as_dict(),
        "partial_spearman": partial.as_dict(),
        "top_k_model": model_top.as_dict(),
        "baselines": base,
        "realized_share_where_map_zero": float(real[pred <= 0].sum() / total) if total > 0 else float("nan"),
        "cells_where_map_zero": int((pred <= 0).sum()),
        "strongest_baseline": strongest,
        "lift_spearman": (model_rho.r - base[strongest]["spearman"]["r"]) if strongest and model_rho.r is not None
        else None,
        "lift_notional_recall": scoring.lift(model_top.notional_recall, best_recall),
        "daily": daily,
    }


def score_backtest(heatmap: pd.DataFrame, candles: pd.DataFrame, realized: pd.DataFrame, *, bar_minutes: int = 60,
                   candle_minutes: int | None = None, open_interest: pd.DataFrame | None = None,
                   leverages: tuple[float, ...] = MODEL.leverages,
                   leverage_weights: tuple[float, ...] = MODEL.leverage_weights, mmr: float = FALLBACK_MMR,
                   top_k: int | None = None, top_share: float = TOP_K_SHARE,
                   max_snapshot_age: dt.timedelta = MAX_SNAPSHOT_AGE) -> tuple[dict, pd.DataFrame]:
    """The whole backtest on plain frames; returns (metrics, per-bar table).

    Inputs (naive UTC timestamps, USD):
    - `heatmap`: snapshot_time, side ('long'/'short'), price, notional_usd: any liquidation map over time;
    - `candles`: open_time, open, high, low, with interval_minutes (or one interval given as
      `candle_minutes`) and optionally series 'mark'/'last'; each bar uses its finest series (bar_frame);
    - `realized`: bar_start, real_long, real_short: realized liquidation notional per bar of `bar_minutes`;
    - `open_interest` (optional): time, oi_usd, scales the bar-range and side-excursion baselines.
    Steps: bar_frame → attach_predictions → attach_realized → attach_baselines → score_bars (see each).
    Bars without a recent-enough snapshot are not scored (counted in `bars_without_snapshot`). metrics
    has `status` "scored", or says why nothing could be scored.
    """
    bars = bar_frame(candles, bar_minutes, candle_minutes)
    bars = attach_predictions(bars, heatmap, max_snapshot_age)
    bars = attach_realized(bars, realized)
    scored = bars[bars["snapshot_time"].notna()].reset_index(drop=True)
    scored = attach_baselines(scored, open_interest, leverages, leverage_weights, mmr)
    realized_total = float(scored["real_long"].sum() + scored["real_short"].sum())
    metrics: dict = {
        "bars": int(len(bars)), "bars_scored": int(len(scored)), "bars_without_snapshot": int(len(bars) - len(scored)),
        "realized_long_usd": float(scored["real_long"].sum()), "realized_short_usd": float(scored["real_short"].sum()),
        "predicted_in_range_usd": float(scored["pred_long"].sum() + scored["pred_short"].sum()),
        "baselines_oi_scaled": bool(scored["oi_usd"].notna().any()) if not scored.empty else False,
    }
    if scored.empty or realized_total <= 0:
        metrics["status"] = "no realized liquidations in the scored bars" if not scored.empty else "no bars with a snapshot"
        return metrics, scored
    metrics.update(score_bars(scored, top_k, top_share))
    metrics["status"] = "scored"
    return metrics, scored


# =====================================================================================================
# Warehouse loaders
# =====================================================================================================

def realized_per_bar(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.datetime, end: dt.datetime,
                     bar_minutes: int, source: str = "auto") -> tuple[str, pd.DataFrame]:
    """Realized liquidation notional per bar and side: (source used, frame bar_start, real_long, real_short).

    Sources, in the order `auto` tries them: `truth` (simulator, complete), `events`
    (raw.realized_liquidations from every source, one row per (time, side, price, quantity): the live
    stream is sampled, so a lower bound), `bars` (raw.realized_liquidation_bars; a bar repeated by two
    files counts once). `none` when no source has a row in [start, end).
    """
    ensure_tables(con, *_READ_TABLES)
    order = list(realized_readers.SOURCES) if source == "auto" else [source]
    for name in order:
        if name not in realized_readers.SOURCES:
            raise ValueError(f"realized source must be auto, truth, events or bars, not {source!r}")
        frame = realized_readers.realized_per_bar(con, name, symbol, start, end, bar_minutes)
        if not frame.empty:
            return name, frame.fillna({"real_long": 0.0, "real_short": 0.0})
    return "none", pd.DataFrame({"bar_start": pd.Series([], dtype="datetime64[us]"), "real_long": [], "real_short": []})


def price_candles(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """Every stored candle of [start, end) of the mark-price and the last-price klines, every interval:
    open_time, open, high, low, interval_minutes, series ('mark' / 'last'); `bar_frame` picks per bar."""
    parts = []
    for table, kind in PRICE_TABLES:
        frame = marks.candles_in_range(con, table, symbol, start, end)
        frame = frame[frame["interval"].isin(list(KLINE_INTERVAL_MS))]
        parts.append(frame.assign(interval_minutes=frame["interval"].map(KLINE_INTERVAL_MS) // 60_000,
                                  series=kind).drop(columns="interval"))
    return pd.concat(parts, ignore_index=True)


def backtest(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date, variant: str = variants.DEFAULT,
             bar_minutes: int = 60, top_k: int | None = None, realized_source: str = "auto",
             params: ModelParams = MODEL) -> BacktestResult:
    """Score a variant's model.liquidation_heatmap against realized liquidations over the days start..end
    (inclusive): loads the frames of `score_backtest` from the warehouse and runs it.

    Price series: per bar the finest candles stored (mark-price klines, else last-price klines, flagged
    in `price_series` and `price_note`; bar_frame). Realized: `realized_per_bar`. OI: raw.open_interest (non-stale
    samples). Leverage-only baseline: the model's leverage mix at tier-1 MMR of the symbol's bracket table.
    Raises BacktestInputError for a bad bar length or bars finer than the candles.
    """
    if end < start:
        raise BacktestInputError(f"backtest end {end} is before start {start}")
    if bar_minutes <= 0 or 1440 % bar_minutes:
        raise BacktestInputError(f"bar length must divide a day into whole bars, got {bar_minutes} minutes")
    ensure_tables(con, *_READ_TABLES)
    t0 = dt.datetime.combine(start, dt.time())
    t1 = dt.datetime.combine(end + dt.timedelta(days=1), dt.time())
    result = BacktestResult(symbol, variant, start, end, bar_minutes, "none")
    candles = price_candles(con, symbol, t0, t1)
    if candles.empty:
        result.metrics = {"status": "no price candles (mark or last) in the range"}
        return result
    heatmap = maps.snapshots_between(con, symbol, variant, t0 - MAX_SNAPSHOT_AGE, t1)
    oi = open_interest.fresh_samples(con, symbol, t0 - dt.timedelta(days=1), t1)
    source, realized = realized_per_bar(con, symbol, t0, t1, bar_minutes, realized_source)
    result.realized_source = source
    try:
        mmr = float(margin.table_for(symbol, start).table.mmr[0])
    except margin.BracketError:
        mmr = FALLBACK_MMR
    metrics, bars = score_backtest(
        heatmap, candles, realized, bar_minutes=bar_minutes,
        open_interest=oi, leverages=np.asarray(params.leverages), leverage_weights=np.asarray(params.leverage_weights),
        mmr=mmr, top_k=top_k)
    series = sorted(set(bars["price_series"])) if not bars.empty else []
    minutes = sorted(set(bars["candle_minutes"].astype(int))) if not bars.empty else []
    metrics = {"price_series": "+".join(series) or "-", "candle_minutes": minutes, "realized_source": source, **metrics}
    if "last" in series:
        n_last = int((bars["price_series"] == "last").sum())
        metrics["price_note"] = f"{n_last} bars priced from last-price klines (no mark-price candles for them)"
    if source == "events":
        metrics["note"] = "forceOrder stream totals are a lower bound (one event per symbol per second)"
    if source == "none" and metrics.get("status") == "scored":
        metrics["status"] = "no realized liquidations in the scored bars"
    result.metrics = metrics
    result.bars = bars
    return result


def check_inputs(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date,
                 variants: list[str] | tuple[str, ...], realized_source: str = "auto", bar_minutes: int = 60) -> None:
    """Raise BacktestInputError with one clear sentence when the backtest of `symbol` over start..end
    cannot score anything: a symbol the warehouse has no heatmap for, no heatmap snapshot of a requested
    variant in the range, no price candles, or no realized liquidations in the range."""
    ensure_tables(con, *_READ_TABLES)
    t0 = dt.datetime.combine(start, dt.time())
    t1 = dt.datetime.combine(end + dt.timedelta(days=1), dt.time())
    known = maps.heatmap_symbols(con)
    if symbol not in known:
        listed = ", ".join(known) if known else "none: materialize liquidation_heatmap first"
        raise BacktestInputError(f"unknown symbol {symbol}: the warehouse has no heatmap for it (symbols with a "
                                 f"heatmap: {listed})")
    have = maps.heatmap_variants_between(con, symbol, t0 - MAX_SNAPSHOT_AGE, t1)
    missing = [v for v in variants if v not in have]
    if missing:
        raise BacktestInputError(f"no {', '.join(missing)} heatmap of {symbol} between {start} and {end} "
                                 "(materialize liquidation_heatmap for those days)")
    if price_candles(con, symbol, t0, t1).empty:
        raise BacktestInputError(f"no price candles (mark or last) of {symbol} between {start} and {end}")
    source, _ = realized_per_bar(con, symbol, t0, t1, bar_minutes, realized_source)
    if source == "none":
        which = "" if realized_source == "auto" else f" from source {realized_source}"
        raise BacktestInputError(f"no realized liquidations{which} of {symbol} between {start} and {end} "
                                 "(import some with `liq import-liquidations` or record them)")
