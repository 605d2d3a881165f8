"""Validation metrics: pure functions over numpy arrays, no Dagster, no I/O.

Seed tests without ground truth (liquidation-math.md §9: funding correlation, OI conservation,
directional accuracy, grade), ground-truth comparisons for the simulator (distribution overlap, relative
error, bin-free log-price distance) and the realized-liquidation backtest (Spearman, partial Spearman given
control variables, top-K precision/recall, leverage-only baseline), and a bootstrap over days.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


def _stats():
    """scipy.stats, imported on first use: the definitions import this module, and most processes that load them
    (a run worker, the code server) never score anything (the import costs about 0.4 s of CPU)."""
    from scipy import stats

    return stats


#: Verdicts of a correlation test (liquidation-math.md §9.1).
PASS, MODERATE, FAIL, INCONCLUSIVE = "pass", "moderate", "fail", "inconclusive"
#: Below this data-quality score (0..1) the grade letter is capped at C: the inputs are too incomplete
#: for an A or B to mean anything (policy of this module, documented in the report).
DATA_QUALITY_FOR_TOP_GRADES = 0.95


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with its p-value and verdict; r and p are None when undefined."""

    method: str
    r: float | None
    p: float | None
    n: int
    verdict: str
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _paired_finite(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"correlation needs two arrays of the same length, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _correlate(method: str, x: np.ndarray, y: np.ndarray, min_n: int) -> Correlation:
    x, y = _paired_finite(x, y)
    n = int(x.size)
    if n < min_n:
        return Correlation(method, None, None, n, INCONCLUSIVE, f"only {n} paired observations (need {min_n})")
    # A constant series has no variance: r is undefined, which is "inconclusive", never pass or fail.
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        which = "first" if np.ptp(x) == 0 else "second"
        return Correlation(method, None, None, n, INCONCLUSIVE, f"the {which} series is constant: r is undefined")
    fn = _stats().pearsonr if method == "pearson" else _stats().spearmanr
    res = fn(x, y)
    r, p = float(res[0]), float(res[1])
    if not math.isfinite(r):
        return Correlation(method, None, None, n, INCONCLUSIVE, "correlation undefined (ties or constant ranks)")
    return Correlation(method, r, p, n, correlation_verdict(r, p))


def correlation_verdict(r: float, p: float) -> str:
    """liquidation-math.md §9.1: pass if r > 0.7 and p < 0.05; moderate if r > 0.5 and p < 0.05; else fail."""
    if r > 0.7 and p < 0.05:
        return PASS
    if r > 0.5 and p < 0.05:
        return MODERATE
    return FAIL


def pearson(x: np.ndarray, y: np.ndarray, min_n: int = 3) -> Correlation:
    """Pearson r and two-sided p over the finite pairs of x and y; inconclusive when undefined."""
    return _correlate("pearson", x, y, min_n)


def spearman(x: np.ndarray, y: np.ndarray, min_n: int = 3) -> Correlation:
    """Spearman rank correlation ρ and two-sided p over the finite pairs; inconclusive when undefined."""
    return _correlate("spearman", x, y, min_n)


def funding_implied_long_ratio(funding_rate_8h: np.ndarray | float) -> np.ndarray:
    """Expected long ratio 0.5 + 0.3·tanh(1000·f), f = daily mean settled funding, 8h-equivalent
    (seed validation, liquidation-math.md §9.1)."""
    return 0.5 + 0.3 * np.tanh(1000.0 * np.asarray(funding_rate_8h, dtype=np.float64))


def oi_error_pct(estimated_usd: float, actual_oi_usd: float) -> float:
    """|Σ(long + short) − OI| / OI · 100, both USD at the same as-of time (liquidation-math.md §9.3)."""
    if not (math.isfinite(actual_oi_usd) and actual_oi_usd > 0):
        raise ValueError(f"actual open interest must be a positive number of USD, got {actual_oi_usd!r}")
    if not math.isfinite(estimated_usd):
        raise ValueError(f"estimated notional must be finite, got {estimated_usd!r}")
    return abs(estimated_usd - actual_oi_usd) / actual_oi_usd * 100.0


def directional_ok(side: np.ndarray, bin_id: np.ndarray, mark_bin: np.ndarray | int) -> np.ndarray:
    """Per level: long levels at or below the mark's grid bin, short levels at or above it (§9.4).

    Compared on the grid, not on the level's representative price: a level in the mark's own bin can
    have its bin mid on the wrong side of the mark while its liquidation price is not.
    `side` is 'long'/'short' or +1/−1.
    """
    side = np.asarray(side)
    is_long = (side == "long") if side.dtype.kind in "UO" else (side == 1)
    b = np.asarray(bin_id, dtype=np.int64)
    m = np.asarray(mark_bin, dtype=np.int64)
    return np.where(is_long, b <= m, b >= m)


def directional_accuracy(ok: np.ndarray) -> float:
    """Share of levels on the correct side of the mark (nan when there are no levels)."""
    ok = np.asarray(ok, dtype=bool)
    return float(ok.mean()) if ok.size else float("nan")


@dataclass(frozen=True)
class Grade:
    """The seed grade (liquidation-math.md §9.5) with its parts, each 0..100."""

    fc_score: float
    oi_score: float
    dir_score: float
    total: float
    letter: str
    inconclusive: bool
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)


def grade(r: float | None, error_pct: float | None, accuracy: float | None,
          data_quality: float | None = None) -> Grade:
    """total = 0.5·fc + 0.2·oi + 0.3·dir; A ≥ 90, B ≥ 80, C ≥ 70, else F (liquidation-math.md §9.5).

    fc = clamp(100·r, 0, 100) with the non-circular r (§9.2); an undefined r scores 0 and marks the
    grade inconclusive. oi = max(0, 100 − 10·error_pct); dir = 100·accuracy. A missing OI error or
    accuracy also scores 0 (it could not be shown to hold). `data_quality` (0..1, share of the raw input
    present) below DATA_QUALITY_FOR_TOP_GRADES caps the letter at C.
    """
    notes = []
    inconclusive = r is None or not math.isfinite(r)
    fc = 0.0 if inconclusive else min(100.0, max(0.0, 100.0 * r))
    if inconclusive:
        notes.append("funding correlation undefined: fc_score 0, grade inconclusive")
    oi, dirs = 0.0, 0.0
    if error_pct is None or not math.isfinite(error_pct):
        notes.append("OI conservation not measurable: oi_score 0")
    else:
        oi = max(0.0, 100.0 - 10.0 * error_pct)
    if accuracy is None or not math.isfinite(accuracy):
        notes.append("no liquidation levels: dir_score 0")
    else:
        dirs = 100.0 * accuracy
    total = 0.5 * fc + 0.2 * oi + 0.3 * dirs
    letter = "A" if total >= 90 else "B" if total >= 80 else "C" if total >= 70 else "F"
    if data_quality is not None and data_quality < DATA_QUALITY_FOR_TOP_GRADES and letter in ("A", "B"):
        notes.append(f"data quality {data_quality:.1%} < {DATA_QUALITY_FOR_TOP_GRADES:.0%}: letter capped at C")
        letter = "C"
    return Grade(fc, oi, dirs, total, letter, inconclusive, tuple(notes))


def distribution_overlap(estimated: np.ndarray, true: np.ndarray) -> float:
    """1 − ½·Σ|p_est − p_true| of two non-negative weight vectors aligned on the same cells.

    Each vector is normalised to sum 1 first; 1 = identical shape, 0 = disjoint support. Equals
    Σ min(p_est, p_true) (the histogram intersection). nan when either vector carries no weight.
    """
    e = np.asarray(estimated, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if e.shape != t.shape:
        raise ValueError(f"overlap needs aligned vectors, got shapes {e.shape} and {t.shape}")
    if np.any(~np.isfinite(e)) or np.any(~np.isfinite(t)) or np.any(e < 0) or np.any(t < 0):
        raise ValueError("overlap weights must be finite and non-negative")
    se, st = e.sum(), t.sum()
    if se <= 0 or st <= 0:
        return float("nan")
    return float(1.0 - 0.5 * np.abs(e / se - t / st).sum())


def mean_abs_relative_error(approx: np.ndarray, exact: np.ndarray) -> float:
    """mean |approx − exact| / |exact| over the finite pairs with exact ≠ 0 (nan when none)."""
    a = np.asarray(approx, dtype=np.float64)
    x = np.asarray(exact, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(x) & (x != 0)
    return float(np.mean(np.abs(a[ok] - x[ok]) / np.abs(x[ok]))) if ok.any() else float("nan")


@dataclass(frozen=True)
class TopK:
    """Precision and recall of the K cells with the largest prediction."""

    k: int
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    #: Share of the realized notional that fell in the flagged cells.
    notional_recall: float

    def as_dict(self) -> dict:
        return asdict(self)


def top_k_precision_recall(predicted: np.ndarray, realized: np.ndarray, k: int,
                           min_realized_usd: float = 0.0) -> TopK:
    """Flag the k cells with the largest predicted notional; a cell is positive when its realized
    notional exceeds `min_realized_usd`.

    precision = TP / flagged, recall = TP / positives. Cells with zero prediction are never flagged, so
    fewer than k may be flagged; every flagged cell without a realized liquidation is a false positive.
    Ties at the k-th value are broken by position (stable sort), so the result is deterministic.
    """
    p = np.asarray(predicted, dtype=np.float64)
    r = np.asarray(realized, dtype=np.float64)
    if p.shape != r.shape:
        raise ValueError(f"predicted and realized must be aligned, got {p.shape} and {r.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    p = np.where(np.isfinite(p), p, 0.0)
    r = np.where(np.isfinite(r), r, 0.0)
    order = np.argsort(-p, kind="stable")[:k]
    flagged = np.zeros(p.shape, dtype=bool)
    flagged[order[p[order] > 0]] = True
    positive = r > min_realized_usd
    tp = int((flagged & positive).sum())
    fp = int((flagged & ~positive).sum())
    fn = int((~flagged & positive).sum())
    n_flagged = tp + fp
    total_realized = r[positive].sum()
    return TopK(
        k=k, true_positives=tp, false_positives=fp, false_negatives=fn,
        precision=tp / n_flagged if n_flagged else float("nan"),
        recall=tp / positive.sum() if positive.any() else float("nan"),
        notional_recall=float(r[flagged & positive].sum() / total_realized) if total_realized > 0 else float("nan"),
    )


def naive_level_factors(leverages: np.ndarray, mmr: float) -> tuple[np.ndarray, np.ndarray]:
    """Liquidation price / entry price of a fresh isolated tier-1 position per leverage, (long, short).

    Exact tier-1 formula with cum = 0 (liquidation-math.md §2): long (1 − 1/L)/(1 − MMR),
    short (1 + 1/L)/(1 + MMR). Independent of the entry price, so the baseline is one multiplication.
    """
    lev = np.asarray(leverages, dtype=np.float64)
    if np.any(lev < 1) or not 0 <= mmr < 1:
        raise ValueError("leverages must be >= 1 and the maintenance margin ratio in [0, 1)")
    return (1 - 1 / lev) / (1 - mmr), (1 + 1 / lev) / (1 + mmr)


def naive_baseline_in_range(mark_price: np.ndarray, long_total_usd: np.ndarray, short_total_usd: np.ndarray,
                            low: np.ndarray, high: np.ndarray, leverages: np.ndarray, weights: np.ndarray,
                            mmr: float) -> tuple[np.ndarray, np.ndarray]:
    """Naive-baseline liquidation notional inside [low, high] per bar, (long, short), USD.

    The baseline puts each side's total notional at the current mark price, split by the leverage
    weights, with no volume profile: each leverage's share liquidates at mark × naive_level_factors.
    All arguments are per bar (arrays of length B) except leverages/weights (the mix, weights sum 1).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != np.asarray(leverages).shape or abs(w.sum() - 1) > 1e-9 or np.any(w < 0):
        raise ValueError("leverage weights must be non-negative, one per leverage, and sum to 1")
    f_long, f_short = naive_level_factors(leverages, mmr)
    mark = np.asarray(mark_price, dtype=np.float64)[:, None]
    lo = np.asarray(low, dtype=np.float64)[:, None]
    hi = np.asarray(high, dtype=np.float64)[:, None]
    in_long = (mark * f_long >= lo) & (mark * f_long <= hi)
    in_short = (mark * f_short >= lo) & (mark * f_short <= hi)
    return (np.asarray(long_total_usd, dtype=np.float64) * (in_long * w).sum(axis=1),
            np.asarray(short_total_usd, dtype=np.float64) * (in_short * w).sum(axis=1))


def lift(model_value: float, baseline_value: float) -> float:
    """model / baseline of a higher-is-better score; nan when the baseline is 0 or undefined."""
    if not (math.isfinite(model_value) and math.isfinite(baseline_value)) or baseline_value == 0:
        return float("nan")
    return model_value / baseline_value


def _ranks(x: np.ndarray) -> np.ndarray:
    return _stats().rankdata(np.asarray(x, dtype=np.float64))


def partial_spearman(x: np.ndarray, y: np.ndarray, controls: list[np.ndarray], min_n: int = 10) -> Correlation:
    """Spearman partial correlation of x and y given the control variables, with its two-sided p.

    Every series is replaced by its ranks (average ranks for ties); x's and y's ranks are each regressed by
    least squares on [1, ranks of every control] and the Pearson r of the two residual series is the
    partial ρ. p from t = r·√((n − 2 − c) / (1 − r²)) with n − 2 − c degrees of freedom, c = number of
    controls. Inconclusive when fewer than `min_n` finite rows remain or a residual series is constant
    (x or y fully explained by the controls).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    cs = [np.asarray(c, dtype=np.float64) for c in controls]
    if any(c.shape != x.shape for c in cs) or x.shape != y.shape:
        raise ValueError("partial Spearman needs x, y and every control aligned on the same rows")
    ok = np.isfinite(x) & np.isfinite(y)
    for c in cs:
        ok &= np.isfinite(c)
    n, k = int(ok.sum()), len(cs)
    method = "partial_spearman"
    if n < max(min_n, k + 4):
        return Correlation(method, None, None, n, INCONCLUSIVE, f"only {n} rows (need {max(min_n, k + 4)})")
    design = np.column_stack([np.ones(n)] + [_ranks(c[ok]) for c in cs])
    rx, ry = _ranks(x[ok]), _ranks(y[ok])
    res_x = rx - design @ np.linalg.lstsq(design, rx, rcond=None)[0]
    res_y = ry - design @ np.linalg.lstsq(design, ry, rcond=None)[0]
    sx, sy = np.sqrt(res_x @ res_x), np.sqrt(res_y @ res_y)
    scale = max(float(np.abs(rx).max()), 1.0) * 1e-9 * math.sqrt(n)
    if sx <= scale or sy <= scale:
        which = "first" if sx <= scale else "second"
        return Correlation(method, None, None, n, INCONCLUSIVE,
                           f"the {which} series is fully explained by the controls: partial ρ is undefined")
    r = float(np.clip(res_x @ res_y / (sx * sy), -1.0, 1.0))
    dof = n - 2 - k
    t = r * math.sqrt(dof / max(1e-300, 1 - r * r))
    p = float(2 * _stats().t.sf(abs(t), dof))
    return Correlation(method, r, p, n, correlation_verdict(r, p))


@dataclass(frozen=True)
class BootstrapInterval:
    """Mean of per-day values with a percentile bootstrap interval over days."""

    mean: float | None
    low: float | None
    high: float | None
    level: float
    n_days: int
    resamples: int

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    def as_dict(self) -> dict:
        return asdict(self) | {"excludes_zero": self.excludes_zero}


def bootstrap_mean_interval(values: np.ndarray, level: float = 0.90, resamples: int = 2000,
                            seed: int = 0, min_days: int = 3) -> BootstrapInterval:
    """Percentile bootstrap of the mean of per-day values (days resampled with replacement).

    Used for "is variant A better than B": values are the per-day differences A − B of a figure, and A is
    better when the whole interval lies above 0. Seeded, so a report is reproducible. None bounds (and an
    interval that excludes nothing) with fewer than `min_days` finite days.
    """
    if not 0 < level < 1:
        raise ValueError(f"bootstrap level must be in (0, 1), got {level}")
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < min_days:
        return BootstrapInterval(float(v.mean()) if v.size else None, None, None, level, int(v.size), 0)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(resamples, v.size))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return BootstrapInterval(float(v.mean()), float(low), float(high), level, int(v.size), resamples)


def weighted_log_price_distance(price_a: np.ndarray, weight_a: np.ndarray, price_b: np.ndarray,
                                weight_b: np.ndarray) -> float:
    """Bin-free distance of two notional-weighted price distributions: the 1-Wasserstein (earth mover's)
    distance between their log prices, scipy.stats.wasserstein_distance.

    In units of log price, so 0.01 ≈ the typical level is 1 % away from where it should be. nan when
    either side carries no weight.
    """
    pa, wa = np.asarray(price_a, dtype=np.float64), np.asarray(weight_a, dtype=np.float64)
    pb, wb = np.asarray(price_b, dtype=np.float64), np.asarray(weight_b, dtype=np.float64)
    ka = np.isfinite(pa) & (pa > 0) & np.isfinite(wa) & (wa > 0)
    kb = np.isfinite(pb) & (pb > 0) & np.isfinite(wb) & (wb > 0)
    if not ka.any() or not kb.any():
        return float("nan")
    return float(_stats().wasserstein_distance(np.log(pa[ka]), np.log(pb[kb]), wa[ka], wb[kb]))
