"""Block bootstrap over weeks: the interval of a mean of daily values whose days are not independent (the
book carries over from day to day), by resampling whole ISO weeks with replacement."""

from __future__ import annotations

import datetime as dt

import numpy as np

from liq_pipeline.model.scoring import BootstrapInterval

#: Fewer whole weeks than this give no interval (an inconclusive comparison). With two, the interval spans
#: the two weeks' means: "better" then means better in each week.
MIN_BLOCKS = 2


def week_of(key) -> tuple:
    """The block of a daily key: its ISO (year, week), keeping any leading parts of a tuple key
    (e.g. (pair, symbol, day) -> (pair, symbol, year, week))."""
    *head, day = key if isinstance(key, tuple) else (key,)
    d = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)[:10])
    return (*head, *d.isocalendar()[:2])


def block_mean_interval(values: np.ndarray, blocks: list, level: float = 0.90, resamples: int = 2000,
                        seed: int = 0, min_blocks: int = MIN_BLOCKS) -> BootstrapInterval:
    """Mean of `values` with a percentile interval from resampling whole `blocks` (one label per value) with
    replacement: each resample's mean is Σ of the drawn blocks' sums / Σ of their sizes. None bounds with
    fewer than `min_blocks` blocks of finite values. `n_days` counts the values, `resamples` the draws."""
    if not 0 < level < 1:
        raise ValueError(f"bootstrap level must be in (0, 1), got {level}")
    v = np.asarray(values, dtype=np.float64)
    if v.size != len(blocks):
        raise ValueError(f"one block label per value: {v.size} values, {len(blocks)} labels")
    ok = np.isfinite(v)
    labels = [b for b, keep in zip(blocks, ok, strict=True) if keep]
    v = v[ok]
    _, inverse = np.unique(np.array([repr(b) for b in labels], dtype=object), return_inverse=True) if labels \
        else (None, np.empty(0, dtype=np.int64))
    k = int(inverse.max()) + 1 if v.size else 0
    if k < min_blocks:
        return BootstrapInterval(float(v.mean()) if v.size else None, None, None, level, int(v.size), 0)
    sums = np.bincount(inverse, weights=v, minlength=k)
    sizes = np.bincount(inverse, minlength=k).astype(np.float64)
    draws = np.random.default_rng(seed).integers(0, k, size=(resamples, k))
    means = sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return BootstrapInterval(float(v.mean()), float(low), float(high), level, int(v.size), resamples)
