"""Liquidation zones: clusters of nearby liquidation levels on one side, found with weighted DBSCAN.

DBSCAN runs on log price (so `eps` is relative: 0.25 % means the same at $100 and $100k) with each level
weighted by its notional (`sample_weight`). A level is a core point when the notional within ±eps of it is
at least `density_ratio` times the average such neighbourhood notional over the side's levels: zones are
the regions denser than usual, whatever the spread of the side. (A threshold as a fixed share of the
side's total chains every contiguous band into one zone when levels are spread evenly.) Weights are
expressed in units of that threshold so DBSCAN's integer `min_samples=1` applies it exactly. Levels in
no zone are noise, still counted in the side's total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Neighbourhood radius as a relative price distance (0.25 %).
DEFAULT_EPS_REL = 0.0025
#: A neighbourhood seeds a zone when it holds this many times the side's average neighbourhood notional.
DEFAULT_DENSITY_RATIO = 1.5


@dataclass(frozen=True)
class Zones:
    """Zones of one side, ranked by notional (rank 1 = largest). Prices USD, notional USD."""

    rank: np.ndarray
    centroid_price: np.ndarray  # notional-weighted mean price
    price_low: np.ndarray
    price_high: np.ndarray
    notional_usd: np.ndarray
    distance_pct: np.ndarray  # (centroid − mark) / mark × 100: negative below the mark
    share_of_side: np.ndarray  # zone notional / side's total liquidation notional

    def __len__(self) -> int:
        return int(self.rank.size)


def find_zones(
    price: np.ndarray,
    notional_usd: np.ndarray,
    mark_price: float,
    eps_rel: float = DEFAULT_EPS_REL,
    density_ratio: float = DEFAULT_DENSITY_RATIO,
) -> Zones:
    """Weighted DBSCAN zones of one side's levels (`price` = bin mid, USD; `notional_usd` per level)."""
    from sklearn.cluster import DBSCAN  # heavy import, only where zones are computed

    price = np.asarray(price, dtype=np.float64)
    w = np.asarray(notional_usd, dtype=np.float64)
    if price.shape != w.shape:
        raise ValueError(f"price {price.shape} and notional {w.shape} differ in shape")
    if np.any(~np.isfinite(price)) or np.any(price <= 0):
        raise ValueError("zone prices must be finite and positive")
    if not (math.isfinite(mark_price) and mark_price > 0):
        raise ValueError(f"mark price must be finite and positive, got {mark_price!r}")
    if not (0 < eps_rel < 1 and density_ratio > 0):
        raise ValueError(f"eps_rel must be in (0, 1) and density_ratio positive, got {eps_rel}, {density_ratio}")
    keep = w > 0
    price, w = price[keep], w[keep]
    total = float(w.sum())
    if total <= 0:
        return _empty()
    eps = math.log1p(eps_rel)
    x = np.log(price)
    order = np.argsort(x)
    xs, cum = x[order], np.concatenate([[0.0], np.cumsum(w[order])])
    # Notional within ±eps of each level (1-D: two binary searches on the sorted log prices).
    nbhd = cum[np.searchsorted(xs, x + eps, "right")] - cum[np.searchsorted(xs, x - eps, "left")]
    threshold = density_ratio * float(nbhd.mean())
    labels = DBSCAN(eps=eps, min_samples=1, metric="euclidean").fit_predict(x[:, None], sample_weight=w / threshold)
    clustered = labels >= 0
    if not clustered.any():
        return _empty()
    lab, inv = np.unique(labels[clustered], return_inverse=True)
    p, n = price[clustered], w[clustered]
    zone_n = np.bincount(inv, weights=n, minlength=lab.size)
    centroid = np.bincount(inv, weights=n * p, minlength=lab.size) / zone_n
    low = np.full(lab.size, np.inf)
    high = np.full(lab.size, -np.inf)
    np.minimum.at(low, inv, p)
    np.maximum.at(high, inv, p)
    order = np.argsort(-zone_n, kind="stable")
    return Zones(
        rank=np.arange(1, lab.size + 1),
        centroid_price=centroid[order],
        price_low=low[order],
        price_high=high[order],
        notional_usd=zone_n[order],
        distance_pct=(centroid[order] - mark_price) / mark_price * 100.0,
        share_of_side=zone_n[order] / total,
    )


def _empty() -> Zones:
    e = np.zeros(0)
    return Zones(np.zeros(0, dtype=np.int64), e, e, e, e, e, e)
