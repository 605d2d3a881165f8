"""Where a candle's volume traded, when only the candle is known (klines without aggTrades).

A candle's trades happened at every price between its low and its high, not at one typical price: placing
a 15-minute candle's whole volume at (high + low + close) / 3 opens every position of the step at one
price, a comb that leaves the prices between the teeth empty (and the liquidation prices drawn from them).
The candle says more than its range: the usual OHLC path runs open → first extreme → second extreme →
close, the low first when the candle closes at or above its open (the rule `flow.extreme_order` uses).
With the volume spread evenly along that path's length in log price, a price is traded in proportion to how
many of the path's three legs cross it (the prices between open and close are crossed three times, the
tails beyond them once). Each candle is drawn at `points` prices: the centres of equal-volume parts of that
distribution, each carrying 1/points of the volume (the same drawing as the leverage points of a bucket).
"""

from __future__ import annotations

import numpy as np

#: Prices drawn per candle. Three as for the leverage points of a bucket: on the real development window
#: five gave the same scores as three (docs/model-v3.md), one price is the comb this module replaces.
PATH_POINTS = 3


def path_points(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, points: int = PATH_POINTS
                ) -> np.ndarray:
    """(n, points) prices: the centres of `points` equal-volume parts of each candle's OHLC path, the volume
    spread evenly along the path's length in log price. A candle without range gives its price `points`
    times. Raises ValueError on a non-positive price or a high below the low."""
    o, h, lo, c = (np.asarray(x, dtype=np.float64) for x in (open_, high, low, close))
    if points < 1:
        raise ValueError(f"price points per candle must be >= 1, got {points}")
    if not (o.shape == h.shape == lo.shape == c.shape and o.ndim == 1):
        raise ValueError(f"open, high, low, close must be 1-d of one length, got {o.shape} {h.shape} {lo.shape} {c.shape}")
    if np.any(~(np.minimum.reduce([o, h, lo, c]) > 0)):
        raise ValueError("candle prices must be positive and finite")
    if np.any(h < lo):
        raise ValueError("a candle's high is below its low")
    low_first = c >= o
    knots = np.log(np.stack([o, np.where(low_first, lo, h), np.where(low_first, h, lo), c], axis=1))  # (n, 4)
    # The path covers [log low, log high]; split it at the sorted knots into three intervals and count how
    # many legs cross each (1 to 3): the volume density there is that count / the path length.
    edges = np.sort(knots, axis=1)  # (n, 4)
    width = np.diff(edges, axis=1)  # (n, 3)
    mid = 0.5 * (edges[:, :-1] + edges[:, 1:])
    a, b = knots[:, :-1, None], knots[:, 1:, None]  # legs (n, 3, 1)
    crossed = ((np.minimum(a, b) <= mid[:, None, :]) & (mid[:, None, :] <= np.maximum(a, b))).sum(axis=1)  # (n, 3)
    mass = crossed * width
    cdf = np.concatenate([np.zeros((o.size, 1)), np.cumsum(mass, axis=1)], axis=1)  # (n, 4)
    total = cdf[:, -1:]
    target = total * ((np.arange(points) + 0.5) / points)[None, :]  # (n, points)
    j = np.clip((cdf[:, None, 1:-1] <= target[:, :, None]).sum(axis=2), 0, 2)  # interval holding each target
    rows = np.arange(o.size)[:, None]
    density = np.where(crossed > 0, crossed, 1)[rows, j]
    x = edges[rows, j] + (target - cdf[rows, j]) / density
    flat = total[:, 0] <= 0
    x[flat] = knots[flat, :1]
    return np.exp(x)
