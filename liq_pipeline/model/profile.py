"""Volume profiles and order-flow imbalance on the price grid: the formulas (liquidation-math.md §8.1).

The warehouse computes them in DuckDB (warehouse/profile_sql.py, one statement per table); these numpy
twins (`ofi`, `long_probability`) state the formulas and let tests cross-check the SQL.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from liq_pipeline.config import MODEL, ModelParams


def window_start(day: dt.date, params: ModelParams = MODEL) -> dt.date:
    """First day of the `params.window_days`-day window ending on `day` (inclusive)."""
    if params.window_days < 1:
        raise ValueError(f"window_days must be at least 1, not {params.window_days}")
    return day - dt.timedelta(days=params.window_days - 1)


def ofi(buy_qty: np.ndarray, sell_qty: np.ndarray) -> np.ndarray:
    """OFI = (buy − sell)/(buy + sell) per bin (base quantity), 0 where there is no volume or it is NaN."""
    buy = np.nan_to_num(np.asarray(buy_qty, dtype=np.float64))
    sell = np.nan_to_num(np.asarray(sell_qty, dtype=np.float64))
    total = buy + sell
    return np.divide(buy - sell, total, out=np.zeros_like(total), where=total > 0)


def long_probability(ofi_values: np.ndarray, params: ModelParams = MODEL) -> np.ndarray:
    """long_prob = 0.5 + 0.35·tanh(1.5·OFI) (seed formula, liquidation-math.md §8.1); in (0.15, 0.85)."""
    return 0.5 + params.ofi_amplitude * np.tanh(params.ofi_gain * np.asarray(ofi_values, dtype=np.float64))
