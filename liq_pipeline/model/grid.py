"""The price grid every profile, distribution, level and heatmap is binned on.

A grid is global per symbol (not per day), so daily profiles add up across a window. Two modes:
`relative` (default): log-spaced bins of constant relative width w, bin k = [(1+w)^k, (1+w)^(k+1));
`fixed`: bins of a constant width in USD, bin k = [k*width, (k+1)*width) (the design's $500 for BTC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liq_pipeline.config import MODEL, ModelParams, symbol_spec


@dataclass(frozen=True)
class PriceGrid:
    mode: str  # "relative" or "fixed"
    width: float  # relative width (0.001 = 0.1 %) or USD

    def __post_init__(self) -> None:
        if self.mode not in ("relative", "fixed") or not self.width > 0:
            raise ValueError(f"invalid price grid {self.mode!r} width {self.width!r}")

    @property
    def log_step(self) -> float:
        return math.log1p(self.width)

    def bin_id(self, price: np.ndarray | float, log_price: np.ndarray | None = None) -> np.ndarray:
        """The bin of each price; `log_price` = np.log(price) when the caller has it already (the same bits:
        several relative grids binning the same prices take the logarithm once)."""
        p = np.asarray(price, dtype=np.float64)
        if self.mode == "relative":
            return np.floor((np.log(p) if log_price is None else log_price) / self.log_step).astype(np.int64)
        return np.floor(p / self.width).astype(np.int64)

    def low(self, bin_id: np.ndarray | int) -> np.ndarray:
        k = np.asarray(bin_id, dtype=np.float64)
        return np.exp(k * self.log_step) if self.mode == "relative" else k * self.width

    def high(self, bin_id: np.ndarray | int) -> np.ndarray:
        return self.low(np.asarray(bin_id) + 1)

    def mid(self, bin_id: np.ndarray | int) -> np.ndarray:
        return 0.5 * (self.low(bin_id) + self.high(bin_id))

    def describe(self) -> str:
        return f"{self.width:.4%} log bins" if self.mode == "relative" else f"${self.width:,.2f} bins"


def grid_for(symbol: str, params: ModelParams = MODEL) -> PriceGrid:
    """The grid of `symbol` under `params.bin_mode`."""
    if params.bin_mode == "fixed":
        return PriceGrid("fixed", symbol_spec(symbol).fixed_bin_width_usd)
    return PriceGrid("relative", params.bin_rel_width)
