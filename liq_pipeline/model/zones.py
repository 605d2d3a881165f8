"""Liquidation zones: clusters of nearby liquidation levels on one side, found with weighted DBSCAN (in 1-D,
written here with numpy: `dbscan_1d`).

DBSCAN runs on log price (so `eps` is relative: 0.25 % means the same at $100 and $100k) with each level
weighted by its notional (`sample_weight`). A level is a core point when the notional within ±eps of it is
at least `density_ratio` times the average such neighbourhood notional over the side's levels: zones are
the regions denser than usual, whatever the spread of the side. (A threshold as a fixed share of the
side's total chains every contiguous band into one zone when levels are spread evenly.) Levels in no zone
are noise, still counted in the side's total.

A trader acts on bands, not on a 10 % stretch of price: a cluster within `NEAR_MARK_REL` of the mark and wider
than `BAND_WIDTH_REL` of the mark is cut into bands at most that wide, each around its own peak level (the
largest level not yet in a band, then the next, ...). Clusters further out stay whole and are marked as
aggregates (`kind` "aggregate"), so a wide far-away cluster is never presented as one actionable zone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Neighbourhood radius as a relative price distance (0.25 %).
DEFAULT_EPS_REL = 0.0025
#: A neighbourhood seeds a zone when it holds this many times the side's average neighbourhood notional.
DEFAULT_DENSITY_RATIO = 1.5
#: Widest band near the mark, as a share of the mark price (1 %).
BAND_WIDTH_REL = 0.01
#: Clusters whose centroid is within this share of the mark (10 %) are cut into bands; further ones are aggregates.
NEAR_MARK_REL = 0.10


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
    peak_price: np.ndarray  # the zone's largest level (bin mid)
    kind: np.ndarray  # "band" (at most BAND_WIDTH_REL of the mark wide, near the mark) or "aggregate"

    def __len__(self) -> int:
        return int(self.rank.size)


def find_zones(
    price: np.ndarray,
    notional_usd: np.ndarray,
    mark_price: float,
    eps_rel: float = DEFAULT_EPS_REL,
    density_ratio: float = DEFAULT_DENSITY_RATIO,
    band_width_rel: float = BAND_WIDTH_REL,
    near_mark_rel: float = NEAR_MARK_REL,
) -> Zones:
    """Weighted DBSCAN zones of one side's levels (`price` = bin mid, USD; `notional_usd` per level), near
    clusters cut into bands at most `band_width_rel` × mark wide (module docstring)."""
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
    labels = dbscan_1d(x, nbhd >= threshold, eps)
    clustered = labels >= 0
    if not clustered.any():
        return _empty()
    p, n = price[clustered], w[clustered]
    _, zone = np.unique(labels[clustered], return_inverse=True)
    kind = np.full(int(zone.max()) + 1, "aggregate", dtype=object)
    zone, kind = _cut_near_clusters(p, n, zone, kind, mark_price, band_width_rel, near_mark_rel)
    k = int(zone.max()) + 1
    zone_n = np.bincount(zone, weights=n, minlength=k)
    centroid = np.bincount(zone, weights=n * p, minlength=k) / zone_n
    low = np.full(k, np.inf)
    high = np.full(k, -np.inf)
    np.minimum.at(low, zone, p)
    np.maximum.at(high, zone, p)
    centroid = np.clip(centroid, low, high)  # a one-level band: the weighted mean may round a hair outside
    by_size = np.lexsort((p, -n))  # largest level first (lowest price on a tie): the first hit per zone is its peak
    first = np.unique(zone[by_size], return_index=True)[1]
    peak = p[by_size][first]
    order = np.argsort(-zone_n, kind="stable")
    return Zones(
        rank=np.arange(1, k + 1),
        centroid_price=centroid[order],
        price_low=low[order],
        price_high=high[order],
        notional_usd=zone_n[order],
        distance_pct=(centroid[order] - mark_price) / mark_price * 100.0,
        share_of_side=zone_n[order] / total,
        peak_price=peak[order],
        kind=kind[order].astype(str),
    )


def dbscan_1d(x: np.ndarray, core: np.ndarray, eps: float) -> np.ndarray:
    """DBSCAN labels of points on a line (−1 = noise), given which points are core (their ε-neighbourhood
    holds enough weight): core points closer than `eps` (inclusive) chain into one cluster, and a non-core
    point within `eps` of a core point joins the nearest one's cluster (the left one on a tie). Same
    clusters as scikit-learn's DBSCAN on 1-D data, without importing it (2-3 s of a picture's time);
    scikit-learn gives an ambiguous border point to whichever cluster reaches it first instead."""
    order = np.argsort(x, kind="stable")
    xs, cs = x[order], core[order]
    labels_sorted = np.full(x.size, -1, dtype=np.int64)
    if cs.any():
        cx = xs[cs]
        cluster = np.concatenate([[0], np.cumsum(np.diff(cx) > eps)])
        labels_sorted[cs] = cluster
        # Nearest core point on each side of every point.
        right = np.searchsorted(cx, xs, "left")
        left = right - 1
        d_left = np.where(left >= 0, xs - cx[np.maximum(left, 0)], np.inf)
        d_right = np.where(right < cx.size, cx[np.minimum(right, cx.size - 1)] - xs, np.inf)
        use_left = d_left <= d_right
        nearest = np.where(use_left, np.maximum(left, 0), np.minimum(right, cx.size - 1))
        border = ~cs & (np.minimum(d_left, d_right) <= eps)
        labels_sorted[border] = cluster[nearest[border]]
    labels = np.empty_like(labels_sorted)
    labels[order] = labels_sorted
    return labels


def _cut_near_clusters(p: np.ndarray, n: np.ndarray, zone: np.ndarray, kind: np.ndarray, mark_price: float,
                       band_width_rel: float, near_mark_rel: float) -> tuple[np.ndarray, np.ndarray]:
    """Zone ids after cutting each near, wide cluster into bands: repeatedly the largest level not yet in a
    band, with the unassigned levels of its cluster within ±width/2 of it (a band stops at a level already
    taken, so bands never overlap). Clusters that are far, or narrow enough, keep their id."""
    width = band_width_rel * mark_price
    zone = zone.copy()
    kinds = list(kind)
    for z in range(kind.size):
        members = np.nonzero(zone == z)[0]
        lo, hi = p[members].min(), p[members].max()
        centroid = float((p[members] * n[members]).sum() / n[members].sum())
        if abs(centroid - mark_price) > near_mark_rel * mark_price:
            continue
        kinds[z] = "band"
        if hi - lo <= width:
            continue
        members = members[np.argsort(p[members], kind="stable")]
        mp, mn = p[members], n[members]
        free = np.ones(members.size, dtype=bool)
        first_band = True
        while free.any():
            i = int(np.flatnonzero(free)[np.argmax(mn[free])])
            taken_left = np.flatnonzero(~free[:i])
            taken_right = np.flatnonzero(~free[i + 1:])
            left = max(int(np.searchsorted(mp, mp[i] - width / 2, "left")),
                       int(taken_left[-1]) + 1 if taken_left.size else 0)
            right = min(int(np.searchsorted(mp, mp[i] + width / 2, "right")) - 1,
                        i + int(taken_right[0]) if taken_right.size else mp.size - 1)
            free[left:right + 1] = False
            if first_band:  # the cluster's own id goes to its first band
                first_band = False
                continue
            zone[members[left:right + 1]] = len(kinds)
            kinds.append("band")
    return zone, np.array(kinds, dtype=object)


def _empty() -> Zones:
    e = np.zeros(0)
    return Zones(np.zeros(0, dtype=np.int64), e, e, e, e, e, e, e, np.zeros(0, dtype=str))
