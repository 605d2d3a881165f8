"""The naive approaches the benchmark compares against: what a quick script does.

- OFI over the 30-day window: load every trade of the window into pandas and loop over the price bins.
- The time-evolving heatmap: a Python loop over candle steps and, inside, over every level.

Both give the same numbers as the pipeline (checked by the benchmark and by test_bench.py).
"""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.model import heatmap as hm
from liq_pipeline.model.grid import PriceGrid


def load_window_trades(con: duckdb.DuckDBPyConnection, symbol: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    return con.execute("SELECT price, quantity, is_buyer_maker FROM raw.agg_trades WHERE symbol = ? "
                       "AND day BETWEEN ? AND ?", [symbol, first, last]).df()


def ofi_per_bin_loop(trades: pd.DataFrame, grid: PriceGrid) -> dict[int, float]:
    """OFI = (buy − sell)/(buy + sell) on base quantity, one pandas filter per bin."""
    trades = trades.assign(bin_id=grid.bin_id(trades["price"].to_numpy()))
    out = {}
    for bin_id in sorted(trades["bin_id"].unique()):
        in_bin = trades[trades["bin_id"] == bin_id]
        buy = in_bin.loc[~in_bin["is_buyer_maker"], "quantity"].sum()
        sell = in_bin.loc[in_bin["is_buyer_maker"], "quantity"].sum()
        out[int(bin_id)] = (buy - sell) / (buy + sell) if buy + sell > 0 else 0.0
    return out


def evolve_per_level_loop(start: hm.LevelState, added_bins: np.ndarray, added: np.ndarray, oi_ratio: np.ndarray,
                          mark_high: np.ndarray, mark_low: np.ndarray, grid: PriceGrid,
                          decay_per_step: float = 1.0) -> hm.Evolution:
    """model.heatmap.evolve written as a script would: a dict of levels, a loop per step and per level."""
    levels: dict[tuple[int, int], float] = {}
    for j, b in enumerate(start.bin_id):
        for row in (hm.LONG_ROW, hm.SHORT_ROW):
            if start.notional[row, j] > 0:
                levels[(row, int(b))] = float(start.notional[row, j])
    price = {}
    T = added.shape[0]
    snaps, shrunk, consumed, decayed = [], np.zeros(T), np.zeros((T, 2)), np.zeros(T)
    for t in range(T):
        for j, b in enumerate(added_bins):
            for row in (hm.LONG_ROW, hm.SHORT_ROW):
                if added[t, row, j] != 0:
                    levels[(row, int(b))] = levels.get((row, int(b)), 0.0) + float(added[t, row, j])
        if oi_ratio[t] < 1:
            for key in levels:
                shrunk[t] += levels[key] * (1 - oi_ratio[t])
                levels[key] *= oi_ratio[t]
        for (row, b), usd in levels.items():
            if b not in price:
                price[b] = float(grid.mid(b))
            low, high = mark_low[t], mark_high[t]
            hit = ((row == hm.LONG_ROW and not math.isnan(low) and price[b] >= low)
                   or (row == hm.SHORT_ROW and not math.isnan(high) and price[b] <= high))
            if hit:
                consumed[t, row] += usd
                levels[(row, b)] = 0.0
        if decay_per_step < 1:
            for key in levels:
                decayed[t] += levels[key] * (1 - decay_per_step)
                levels[key] *= decay_per_step
        for (row, b), usd in levels.items():
            if usd > 0:
                snaps.append((t, row, b, usd))
    snaps.sort()
    arr = np.array(snaps, dtype=np.float64).reshape(-1, 4)
    end = [(row, b, usd) for (row, b), usd in levels.items() if usd > 0]
    end_state = hm.LevelState.from_rows(np.array([1 if r == hm.LONG_ROW else -1 for r, _, _ in end], dtype=np.int64),
                                        np.array([b for _, b, _ in end], dtype=np.int64),
                                        np.array([u for _, _, u in end]))
    return hm.Evolution(step=arr[:, 0].astype(np.int64), side=np.where(arr[:, 1] == hm.LONG_ROW, 1, -1),
                        bin_id=arr[:, 2].astype(np.int64), notional_usd=arr[:, 3], end_state=end_state,
                        added_usd=added.sum(axis=(1, 2)), shrunk_usd=shrunk, consumed_long_usd=consumed[:, 0],
                        consumed_short_usd=consumed[:, 1], decayed_usd=decayed)
