"""The leverage mix's prior, tied to a public fact: how much of the open interest can sit near liquidation
given how much of it is liquidated a day. What is left is held at low leverage, on cross margin or hedged,
and is drawn in the grid's low buckets; public liquidations cannot see it, so its share stays a prior.

Pure numpy. `config.FlowParams.prior_weights` holds the numbers this module computes from the facts in
`config` (a unit test recomputes them), so the prior has one source and one derivation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liq_pipeline.model import flow as fl


def liquidation_probability(distance: np.ndarray, daily_vol: float, mean_life_days: float) -> np.ndarray:
    """Probability that a position is liquidated before it is closed: a driftless Brownian log price with sd
    `daily_vol` per √day reaches the distance d (fraction of the entry) before an exponential life with mean
    T̄ days ends: P = exp(−d · √(2 / T̄) / σ) (first passage under exponential killing; one-sided)."""
    d = np.maximum(np.asarray(distance, dtype=np.float64), 0.0)
    if not daily_vol > 0 or not mean_life_days > 0:
        raise ValueError(f"daily vol {daily_vol!r} and mean life {mean_life_days!r} (days) must be positive")
    return np.exp(-d * np.sqrt(2.0 / mean_life_days) / daily_vol)


def fresh_distance(leverage: np.ndarray, mmr: float) -> np.ndarray:
    """Distance from entry to the liquidation price of a fresh isolated long, as a fraction of the entry:
    1 − LP/EP = (1/L − MMR) / (1 − MMR) (Binance USD-M one-way isolated, one tier; shorts are as far)."""
    lev = np.asarray(leverage, dtype=np.float64)
    return (1.0 / lev - mmr) / (1.0 - mmr)


def daily_intensity(points: np.ndarray, weights: np.ndarray, daily_vol: float, mean_life_days: float,
                    mmr: float) -> float:
    """Fraction of the book liquidated a day: Σ_b w_b · mean over the bucket's points of P(liquidated) / T̄
    (positions pass through the book once per mean life T̄; `points` (B, k) as model/flow.bucket_points)."""
    p = liquidation_probability(fresh_distance(points, mmr), daily_vol, mean_life_days).mean(axis=1)
    return float(np.dot(np.asarray(weights, dtype=np.float64), p) / mean_life_days)


def prior_weights(points: np.ndarray, leveraged_shape: np.ndarray, low_buckets: int, intensity_per_day: float,
                  daily_vol: float, mean_life_days: float, mmr: float) -> tuple[np.ndarray, float]:
    """Prior mix over the buckets and the near-liquidation share s* it implies.

    The leveraged population (buckets from `low_buckets` on) keeps the given shape; its share of the open
    interest is the one that reproduces the real liquidation intensity: s* = I / intensity(shape), capped at 1.
    The rest, 1 − s*, is split evenly over the `low_buckets` lowest buckets (low leverage, cross margin,
    hedged holders: no public fact splits them). Returns (weights (B,), s*)."""
    pts = np.asarray(points, dtype=np.float64)
    shape = np.asarray(leveraged_shape, dtype=np.float64)
    if pts.ndim != 2 or shape.shape != (pts.shape[0] - low_buckets,) or low_buckets < 1:
        raise ValueError(f"{pts.shape[0]} buckets, {low_buckets} low: expected {pts.shape[0] - low_buckets} "
                         f"leveraged weights, got {shape.shape}")
    if np.any(shape < 0) or not shape.sum() > 0:
        raise ValueError("the leveraged shape must be non-negative with a positive sum")
    shape = shape / shape.sum()
    near = min(1.0, intensity_per_day / daily_intensity(pts[low_buckets:], shape, daily_vol, mean_life_days, mmr))
    w = np.concatenate([np.full(low_buckets, (1.0 - near) / low_buckets), near * shape])
    return w, near


def identified_buckets(per_weight: np.ndarray, min_share: float = 0.01) -> np.ndarray:
    """Which buckets the public liquidations can learn: those whose consumed notional per unit weight over the
    window (`per_weight` (n, L), the fit's regressors) is at least `min_share` of the largest bucket's. A
    bucket the mark never reached (1.5× liquidates about 60 % from its entry) keeps the prior's weight."""
    u = np.asarray(per_weight, dtype=np.float64).sum(axis=0)
    top = u.max() if u.size else 0.0
    return u >= min_share * top if top > 0 else np.zeros(u.shape, dtype=bool)


def fit_with_low_end(per_weight: np.ndarray, realized_usd: np.ndarray, prior: np.ndarray, low_buckets: int,
                     ridge: float) -> Fit:
    """The mix of one side when the grid's `low_buckets` lowest buckets hold the open interest that is not near
    liquidation (low leverage, cross margin, hedged).

    The leveraged buckets are fitted as model/flow.fit_side does (R ≈ Σβ_l·U_l, β ≥ 0, ridge towards the prior's
    shape); there Σβ is the share of the open interest they hold (the book is the open interest), so it is
    learned where public liquidations exist and is the prior's (the intensity-tied s*) where they do not.
    The low buckets hold the rest, 1 − Σβ, split in the prior's proportions: no liquidation reaches them
    (a 1.5× position liquidates about 60 % from its entry), so their split is never learned. The whole book
    is drawn: the returned leveraged share is 1, the near-liquidation share is in `near_share`."""
    w0 = np.asarray(prior, dtype=np.float64)
    if not 0 < low_buckets < w0.size:
        raise ValueError(f"low buckets {low_buckets} must leave at least one of {w0.size} buckets to fit")
    U = np.asarray(per_weight, dtype=np.float64)
    near0 = float(w0[low_buckets:].sum())
    fit = fl.fit_side(U[:, low_buckets:], realized_usd, w0[low_buckets:] / near0, near0, ridge)
    near = fit.leveraged_share
    low = w0[:low_buckets] / w0[:low_buckets].sum() * (1.0 - near)
    reached = identified_buckets(U)
    detail = fit.detail + (f"; {near:.4f} of the book near liquidation; buckets the window's liquidations reached: "
                           f"{int(reached.sum())} of {w0.size}; the low {low_buckets} hold the rest (prior split)")
    return Fit(np.concatenate([low, near * fit.weights]), 1.0, fit.source, detail, near)


def pool_near_share(fits: dict[str, Fit], low_buckets: int) -> dict[str, Fit]:
    """The sides' fits with one near-liquidation share for both: the mean of the two learned Σβ, each side keeping
    its own leveraged shape and the prior's split of the low buckets.

    A contract has a long and a short, and the side balance of what is opened comes from the crowding signals
    (model/flow.crowding); a share fitted per side on a few liquidations a day swings several-fold between the
    sides (as `pipeline/flow_day.map_scale` measured before the grid reached the low end) and, when each side's
    near-mark part is drawn at its own share, sets the side balance near the mark instead of the signals."""
    near = float(np.mean([f.near_share for f in fits.values()]))
    out = {}
    for side, f in fits.items():
        w = np.asarray(f.weights, dtype=np.float64)
        low, lev = w[:low_buckets], w[low_buckets:]
        low = low / low.sum() * (1.0 - near) if low.sum() > 0 else np.full(low_buckets, (1.0 - near) / low_buckets)
        lev = lev / lev.sum() * near if lev.sum() > 0 else lev
        detail = f.detail + f"; near-liquidation share pooled over both sides: {near:.4f} (this side's fit {f.near_share:.4f})"
        out[side] = Fit(np.concatenate([low, lev]), f.leveraged_share, f.source, detail, near)
    return out


@dataclass(frozen=True)
class Fit:
    """A side's mix over every bucket (sums to 1), the map scale (1: the whole book), where it came from and
    the share of the book in the leveraged buckets."""

    weights: np.ndarray
    leveraged_share: float
    source: str
    detail: str
    near_share: float
