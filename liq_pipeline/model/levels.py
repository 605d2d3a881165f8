"""From estimated entry notional to liquidation notional at risk, on the price grid.

A bin of entry notional is split over a leverage mix and a position-size distribution; each cell is
priced as a freshly opened isolated position with the exact tier-aware formula (margin.py), and the
notional lands in the grid bin of its liquidation price. Longs liquidate below entry, shorts above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.model.margin import (
    LONG,
    SHORT,
    BracketTable,
    isolated_liquidation_price_at_leverage,
    max_leverage_at,
)


@dataclass(frozen=True)
class SizeBuckets:
    """Representative position notionals (USD) and the share of notional each carries (sums to 1)."""

    notional_usd: np.ndarray
    weight: np.ndarray


def size_buckets_from_trades(trade_notional_usd: np.ndarray, n_buckets: int = 5) -> SizeBuckets:
    """Split trade notional into `n_buckets` notional-weighted quantile buckets.

    Bucket b holds the trades between the b/n and (b+1)/n quantiles of cumulative notional; its
    representative size is the notional-weighted mean trade in it, its weight the share of notional it
    carries (so each is 1/n up to ties). Large positions are thus represented in proportion to the
    volume they trade, which is what puts notional into the higher margin tiers.
    """
    x = np.sort(np.asarray(trade_notional_usd, dtype=np.float64))
    x = x[np.isfinite(x) & (x > 0)]
    if x.size == 0:
        raise ValueError("no trades to derive a position-size distribution from")
    cum = np.cumsum(x)
    total = cum[-1]
    edges = np.searchsorted(cum, total * np.arange(1, n_buckets) / n_buckets)
    groups = np.split(x, edges)
    sizes, weights = [], []
    for g in groups:
        if g.size:
            sizes.append(float(np.sum(g * g) / np.sum(g)))
            weights.append(float(np.sum(g) / total))
    return SizeBuckets(np.array(sizes), np.array(weights))


@dataclass(frozen=True)
class LeverageMix:
    leverage: np.ndarray
    weight: np.ndarray  # sums to 1

    @classmethod
    def of(cls, leverages, weights) -> LeverageMix:
        lev = np.asarray(leverages, dtype=np.float64)
        w = np.asarray(weights, dtype=np.float64)
        if lev.shape != w.shape or np.any(lev < 1) or np.any(w < 0) or abs(w.sum() - 1) > 1e-9:
            raise ValueError("leverage weights must be non-negative, one per leverage, and sum to 1")
        return cls(lev, w)


@dataclass(frozen=True)
class ProjectedLevels:
    """Liquidation notional per (side, grid bin). `side` is +1 long / -1 short."""

    side: np.ndarray
    bin_id: np.ndarray
    notional_usd: np.ndarray
    collateral_usd: np.ndarray
    #: Notional dropped because the position is beyond an incomplete table or has no liquidation price.
    unpriced_usd: float


@dataclass(frozen=True)
class PricedCells:
    """The priced (side, entry, leverage, size) cells of `priced_cells`, in that (C) order, before any
    aggregation: `entry` indexes the entry prices; `side` is +1 long / -1 short."""

    side: np.ndarray
    entry: np.ndarray
    bin_id: np.ndarray
    notional_usd: np.ndarray
    collateral_usd: np.ndarray
    unpriced_usd: float


def priced_cells(
    entry_price: np.ndarray,
    long_usd: np.ndarray,
    short_usd: np.ndarray,
    grid: PriceGrid,
    table: BracketTable,
    leverage_mix: LeverageMix,
    sizes: SizeBuckets,
) -> PricedCells:
    """Every (side, entry, leverage, size) cell of `project_levels` with its grid bin, notional and
    collateral, cells with no price or no notional left out (their notional is `unpriced_usd`)."""
    entry = np.asarray(entry_price, dtype=np.float64)
    amounts = np.stack([np.asarray(long_usd, dtype=np.float64), np.asarray(short_usd, dtype=np.float64)])
    side = np.array([LONG, SHORT], dtype=np.float64)
    size = sizes.notional_usd
    max_lev = max_leverage_at(size, table)
    lev = np.minimum(leverage_mix.leverage[:, None], np.where(np.isnan(max_lev), np.inf, max_lev)[None, :])  # (L, S)
    cell_w = leverage_mix.weight[:, None] * sizes.weight[None, :]  # (L, S)

    # Broadcast shape: (side=2, entry=E, lev=L, size=S)
    lp = isolated_liquidation_price_at_leverage(
        side[:, None, None, None], size[None, None, None, :], entry[None, :, None, None], lev[None, None, :, :], table
    )
    notional = amounts[:, :, None, None] * cell_w[None, None, :, :]
    priced = np.isfinite(lp.price) & (notional > 0)
    unpriced = float(notional[~np.isfinite(lp.price)].sum())
    e = np.broadcast_to(np.arange(entry.size)[None, :, None, None], lp.price.shape)[priced]
    return PricedCells(
        side=np.broadcast_to(side[:, None, None, None], lp.price.shape)[priced].astype(np.int64),
        entry=e,
        bin_id=grid.bin_id(lp.price[priced]),
        notional_usd=notional[priced],
        collateral_usd=(notional / lev[None, None, :, :])[priced],
        unpriced_usd=unpriced,
    )


def project_levels(
    entry_price: np.ndarray,
    long_usd: np.ndarray,
    short_usd: np.ndarray,
    grid: PriceGrid,
    table: BracketTable,
    leverage_mix: LeverageMix,
    sizes: SizeBuckets,
) -> ProjectedLevels:
    """Liquidation notional on `grid` for entry notional `long_usd`/`short_usd` at `entry_price` (USD).

    Every (entry, side, leverage, size) cell gets notional = entry notional × leverage weight × size
    weight, priced with the exact isolated formula at WB = N/L and the tier re-checked at LP. A leverage
    above the tier's max_leverage for that size is capped to the max (Binance would refuse it).
    Collateral = notional / leverage. The total notional is conserved except `unpriced_usd`.
    """
    cells = priced_cells(entry_price, long_usd, short_usd, grid, table, leverage_mix, sizes)
    # Aggregate (side, bin) with a sort-based group-by.
    key = np.stack([cells.side.astype(np.float64), cells.bin_id.astype(np.float64)])
    uniq, inverse = np.unique(key, axis=1, return_inverse=True)
    inverse = inverse.ravel()
    return ProjectedLevels(
        side=uniq[0].astype(np.int64),
        bin_id=uniq[1].astype(np.int64),
        notional_usd=np.bincount(inverse, weights=cells.notional_usd, minlength=uniq.shape[1]),
        collateral_usd=np.bincount(inverse, weights=cells.collateral_usd, minlength=uniq.shape[1]),
        unpriced_usd=cells.unpriced_usd,
    )
