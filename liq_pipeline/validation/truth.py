"""Accuracy against the simulator's ground truth (truth.* tables): overlap of the estimated liquidation
map with the true one, the long-share error, the formula errors, and the ceiling an oracle reaches.
Validation layer only: nothing here is ever read by the estimator."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.config import MODEL, VARIANTS, ModelParams
from liq_pipeline.model import margin, scoring
from liq_pipeline.model.grid import grid_for
from liq_pipeline.validation.common import ensure_read_tables

#: Flat MMR of the "simplified" formula as most heatmap tools use it (liquidation-math.md §7).
SIMPLIFIED_MMR = 0.004


def has_ground_truth(con: duckdb.DuckDBPyConnection, symbol: str) -> bool:
    ensure_read_tables(con)
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


def ground_truth_accuracy(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date,
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
    ensure_read_tables(con)
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
