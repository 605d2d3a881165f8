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

**Within reach** (issue 26 round 6). The book holds the whole open interest, most of it at low leverage or on
cross margin 25-60 % from the mark: real, but not where liquidations happen. Zones are therefore found and
ranked on what the mark can reach before they are recomputed: each level's notional is weighted by the
probability that a driftless mark with daily volatility σ touches it within `REACH_DAYS` (a day), P = erfc(d / (σ·√(2T))) (reflection principle,
d = |log(level / mark)|), and levels with P < `REACH_MIN_PROBABILITY` are left out (out of reach, still counted
in the side's total). σ is the realised volatility of the mark where the caller has the day's path
(`realised_daily_vol` of the hourly closes of the 7 days ending with the day), else `DEFAULT_DAILY_VOL` (BTC's ≈ 50 % a year, the leverage prior's figure). A
zone's `notional_usd` is still the notional of its levels; its rank is by that notional × P (`reach_usd`).
`reach_days=None` turns the weighting off (every level, ranked by notional: the previous rule).
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
#: Horizon of "within reach" (days): one day, until the zones are recomputed at the next day's end (at σ = 2.6 %
#: a day a level 2 % away is touched with probability 0.59, 5 % away 0.05, 10 % away 0.0001). On the simulated
#: calm/23 market a week let the far book back into the top zones on volatile days (top zone > 10 % from the
#: mark on 47 % of the side-days, 3 days 11 %, 1 day none).
REACH_DAYS = 1.0
#: Levels the mark touches within the horizon with a smaller probability are out of reach (no zone).
REACH_MIN_PROBABILITY = 0.01
#: Daily sd of log returns when the caller has no realised figure (BTC's ≈ 50 % annualised:
#: config.FlowParams.prior_daily_vol, the same fact as the leverage prior's).
DEFAULT_DAILY_VOL = 0.026


def reach_probability(price: np.ndarray, mark_price: float, daily_vol: float, days: float) -> np.ndarray:
    """Probability that a driftless log mark with sd `daily_vol`·√day touches each price within `days`:
    erfc(d / (σ·√(2T))), d = |log(price / mark)| (reflection principle)."""
    from scipy.special import erfc

    if not (math.isfinite(daily_vol) and daily_vol > 0 and math.isfinite(days) and days > 0):
        raise ValueError(f"daily vol {daily_vol!r} and horizon {days!r} days must be positive")
    d = np.abs(np.log(np.asarray(price, dtype=np.float64) / mark_price))
    return erfc(d / (daily_vol * math.sqrt(2.0 * days)))


def realised_daily_vol(close: np.ndarray, step_minutes: float) -> float:
    """Daily sd of log returns from a series of closes `step_minutes` apart (NaN closes skipped); nan with
    fewer than 8 returns."""
    c = np.asarray(close, dtype=np.float64)
    c = c[np.isfinite(c) & (c > 0)]
    if c.size < 9 or not step_minutes > 0:
        return float("nan")
    r = np.diff(np.log(c))
    return float(np.std(r) * math.sqrt(24 * 60 / step_minutes))


@dataclass(frozen=True)
class Zones:
    """Zones of one side, ranked by notional (rank 1 = largest). Prices USD, notional USD."""

    rank: np.ndarray  # by reach_usd (by notional when the reach weighting is off)
    centroid_price: np.ndarray  # notional-weighted mean price
    price_low: np.ndarray
    price_high: np.ndarray
    notional_usd: np.ndarray
    distance_pct: np.ndarray  # (centroid − mark) / mark × 100: negative below the mark
    share_of_side: np.ndarray  # zone notional / side's total liquidation notional
    peak_price: np.ndarray  # the zone's largest level (bin mid)
    kind: np.ndarray  # "band" (at most BAND_WIDTH_REL of the mark wide, near the mark) or "aggregate"
    reach_usd: np.ndarray  # Σ notional × probability the mark touches the level within the horizon

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
    daily_vol: float | None = None,
    reach_days: float | None = REACH_DAYS,
) -> Zones:
    """Weighted DBSCAN zones of one side's levels (`price` = bin mid, USD; `notional_usd` per level) within reach
    of the mark, ranked by the notional the mark would reach, near clusters cut into bands at most
    `band_width_rel` × mark wide (module docstring). `daily_vol` None or not finite: DEFAULT_DAILY_VOL."""
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
    if reach_days is None:
        reach = np.ones(price.size)
    else:
        vol = daily_vol if daily_vol is not None and math.isfinite(daily_vol) and daily_vol > 0 else DEFAULT_DAILY_VOL
        reach = reach_probability(price, mark_price, vol, reach_days)
        near = reach >= REACH_MIN_PROBABILITY
        price, w, reach = price[near], w[near], reach[near]
        if price.size == 0:
            return _empty()
    raw = w
    w = w * reach
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
    p, n, n_raw = price[clustered], w[clustered], raw[clustered]
    _, zone = np.unique(labels[clustered], return_inverse=True)
    kind = np.full(int(zone.max()) + 1, "aggregate", dtype=object)
    zone, kind = _cut_near_clusters(p, n, zone, kind, mark_price, band_width_rel, near_mark_rel)
    k = int(zone.max()) + 1
    zone_reach = np.bincount(zone, weights=n, minlength=k)
    zone_n = np.bincount(zone, weights=n_raw, minlength=k)
    centroid = np.bincount(zone, weights=n_raw * p, minlength=k) / zone_n
    low = np.full(k, np.inf)
    high = np.full(k, -np.inf)
    np.minimum.at(low, zone, p)
    np.maximum.at(high, zone, p)
    centroid = np.clip(centroid, low, high)  # a one-level band: the weighted mean may round a hair outside
    by_size = np.lexsort((p, -n_raw))  # largest level first (lowest price on a tie): the first hit per zone is its peak
    first = np.unique(zone[by_size], return_index=True)[1]
    peak = p[by_size][first]
    order = np.argsort(-zone_reach, kind="stable")
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
        reach_usd=zone_reach[order],
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
    return Zones(np.zeros(0, dtype=np.int64), e, e, e, e, e, e, e, np.zeros(0, dtype=str), e)
