"""Stylized facts of a perpetual-futures market, computed the same way on a simulated and on a real window.

Every statistic is an aggregate over hourly rows (klines, open interest, liquidations), daily rows and
funding settlements, so real windows of the simulated window's length can be resampled from the real days
to give each statistic a band: a moving-block bootstrap of days (blocks of a week starting on any day, so
intraday structure and a week's carry-over are kept) gives the mean, spread and correlation of the
statistics over real windows of that length, and `prediction_band` turns them into a simultaneous 95 %
prediction band: a new window like the real ones passes every statistic with probability 95 %, the nominal
rate (per-statistic 95 % intervals from the resampled windows' quantiles let a held-out real week pass
all 13 in 1 of 11). A short real episode (sim/episodes.py) is resampled by single
days (`block_days=1`): it has too few weeks. `held_out_real` measures how often real windows themselves pass.
Plain numpy, no I/O: `fact_series.py` loads the inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

HOURS_PER_DAY = 24
HOURS_PER_WEEK = 168
#: Length of the moving-block bootstrap's blocks in days: a week by default (each block starts on any day).
BLOCK_DAYS = 7
#: The funding rate Binance charges when the premium is inside the clamp (interest 0.03 %/day per 8 h).
INTEREST_RATE_8H = 1e-4
#: Share of the hours with the most liquidated notional in `top_hours_share`.
TOP_HOURS_FRACTION = 0.05
#: Resampled real windows behind each band, and the share of them the band holds on all statistics at once.
BOOTSTRAP_RESAMPLES = 400
BAND_COVERAGE = 0.95


@dataclass(frozen=True)
class HourlyMarket:
    """One symbol's public series on a whole number of UTC days, one row per hour (index i = hour i).

    `oi_usd` may hold NaN (a missing sample); liquidations are USD per hour by the side liquidated, already
    on the scale the comparison uses (see fact_series.py for the three-exchange factor).
    """

    hour_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    quote_volume_usd: np.ndarray
    oi_usd: np.ndarray
    liq_long_usd: np.ndarray
    liq_short_usd: np.ndarray
    funding_ms: np.ndarray
    funding_rate_8h: np.ndarray

    def __post_init__(self) -> None:
        n = self.hour_ms.size
        if n == 0 or n % HOURS_PER_DAY:
            raise ValueError(f"HourlyMarket needs whole days of hourly rows, got {n} rows")
        for name in ("open", "high", "low", "close", "quote_volume_usd", "oi_usd", "liq_long_usd", "liq_short_usd"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"HourlyMarket.{name} has shape {getattr(self, name).shape}, expected ({n},)")
        if self.funding_ms.shape != self.funding_rate_8h.shape:
            raise ValueError("funding_ms and funding_rate_8h differ in length")

    @property
    def days(self) -> int:
        return self.hour_ms.size // HOURS_PER_DAY


@dataclass(frozen=True)
class FactRows:
    """Per-row quantities the statistics aggregate, each table with the bootstrap block (0-based: the week,
    or the day for `block_days=1`) its row falls in, under the key "block"."""

    hour: dict[str, np.ndarray]
    day: dict[str, np.ndarray]
    funding: dict[str, np.ndarray]

    def take_blocks(self, blocks: np.ndarray) -> FactRows:
        """The rows of `blocks` (with repetitions), concatenated in that order."""
        def pick(table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            order = np.argsort(table["block"], kind="stable")
            w = table["block"][order]
            starts = np.searchsorted(w, blocks)
            ends = np.searchsorted(w, blocks, side="right")
            idx = np.concatenate([order[s:e] for s, e in zip(starts, ends, strict=True)]) if blocks.size else \
                np.empty(0, dtype=np.int64)
            return {k: v[idx] for k, v in table.items()}
        return FactRows(pick(self.hour), pick(self.day), pick(self.funding))


def fact_rows(m: HourlyMarket, block_days: int = BLOCK_DAYS) -> FactRows:
    """Per-hour, per-day and per-settlement quantities, each row with its block of `block_days` days;
    differences are taken on the contiguous series before any resampling, so a resampled window never
    differences across a junction."""
    block_hours = HOURS_PER_DAY * block_days
    n = m.hour_ms.size
    hour_idx = np.arange(n)
    logret = np.log(m.close / np.r_[m.open[0], m.close[:-1]])
    prev_ret = np.r_[np.nan, logret[:-1]]
    oi_prev = np.r_[np.nan, m.oi_usd[:-1]]
    liq = m.liq_long_usd + m.liq_short_usd
    hour = {
        "block": hour_idx // block_hours,
        "ret": logret, "prev_ret": prev_ret,
        "range": (m.high - m.low) / m.open,
        "liq_usd": liq, "liq_long_usd": m.liq_long_usd,
        "liq_over_oi": liq / m.oi_usd,
        "churn": np.abs(m.oi_usd - oi_prev) / oi_prev,
        "volume_over_oi": m.quote_volume_usd / m.oi_usd,
    }
    d = m.days
    close_d = m.close.reshape(d, HOURS_PER_DAY)[:, -1]
    open_d = m.open.reshape(d, HOURS_PER_DAY)[:, 0]
    oi_d = m.oi_usd.reshape(d, HOURS_PER_DAY)
    # Day-to-day OI change: first valid sample of the day to the first valid sample of the next day.
    first_oi = _first_finite(oi_d)
    day = {
        "block": np.arange(d) // block_days,
        "ret": np.log(close_d / np.r_[open_d[0], close_d[:-1]]),
        "abs_doi": np.abs(np.r_[first_oi[1:], np.nan] / first_oi - 1),
    }
    t0 = m.hour_ms[0]
    funding = {
        "block": ((m.funding_ms - t0) // (block_hours * 3_600_000)).astype(np.int64),
        "rate": m.funding_rate_8h,
    }
    keep = (funding["block"] >= 0) & (funding["block"] <= hour["block"].max())
    funding = {k: v[keep] for k, v in funding.items()}
    return FactRows(hour, day, funding)


def _first_finite(a: np.ndarray) -> np.ndarray:
    ok = np.isfinite(a)
    j = np.where(ok.any(axis=1), ok.argmax(axis=1), 0)
    return np.where(ok.any(axis=1), a[np.arange(a.shape[0]), j], np.nan)


def _nan_corr(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan")
    return _nan_corr(sps.rankdata(x[ok]), sps.rankdata(y[ok]))


def _share(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def liq_pct_of_oi_per_day(r: FactRows) -> float:
    return float(np.nanmean(r.hour["liq_over_oi"]) * HOURS_PER_DAY * 100)


def funding_at_interest_share(r: FactRows) -> float:
    rate = r.funding["rate"]
    return float(np.mean(np.isclose(rate, INTEREST_RATE_8H, rtol=0, atol=5e-9))) if rate.size else float("nan")


def funding_quantile(q: float) -> Callable[[FactRows], float]:
    def stat(r: FactRows) -> float:
        return float(np.quantile(r.funding["rate"], q)) if r.funding["rate"].size else float("nan")
    return stat


def vol_ratio_hourly_daily(r: FactRows) -> float:
    """Annualised vol from hourly returns over annualised vol from daily returns (1 = no intraday reversion)."""
    h = np.nanstd(r.hour["ret"]) * np.sqrt(HOURS_PER_DAY * 365)
    d = np.nanstd(r.day["ret"]) * np.sqrt(365)
    return _share(h, d)


def hourly_return_autocorr(r: FactRows) -> float:
    return _nan_corr(r.hour["ret"], r.hour["prev_ret"])


def hourly_oi_churn_per_day(r: FactRows) -> float:
    """Σ |ΔOI_h| / OI over a day (hourly changes)."""
    return float(np.nanmean(r.hour["churn"]) * HOURS_PER_DAY)


def mean_daily_abs_oi_change_pct(r: FactRows) -> float:
    return float(np.nanmean(r.day["abs_doi"]) * 100)


def spearman_liq_vs_range(r: FactRows) -> float:
    return _spearman(r.hour["liq_usd"], r.hour["range"])


def volume_over_oi_per_day(r: FactRows) -> float:
    return float(np.nanmean(r.hour["volume_over_oi"]) * HOURS_PER_DAY)


def long_share_of_liquidations(r: FactRows) -> float:
    return _share(np.nansum(r.hour["liq_long_usd"]), np.nansum(r.hour["liq_usd"]))


def top_hours_share(r: FactRows) -> float:
    """Share of the liquidated notional that falls in the top 5 % of hours by liquidated notional."""
    liq = np.sort(np.nan_to_num(r.hour["liq_usd"]))[::-1]
    k = max(1, int(round(TOP_HOURS_FRACTION * liq.size)))
    return _share(liq[:k].sum(), liq.sum())


@dataclass(frozen=True)
class Statistic:
    name: str
    description: str
    fmt: str
    compute: Callable[[FactRows], float]
    #: Scale its band is built on (`prediction_band`): "log" (a positive level), "atanh" (a correlation),
    #: "share" (in [0, 1]) or "linear".
    scale: str = "linear"


STATISTICS: tuple[Statistic, ...] = (
    Statistic("liq_pct_oi_per_day", "liquidated notional per day, % of OI", "{:.3f}", liq_pct_of_oi_per_day,
              "log"),
    Statistic("funding_at_interest_share", "funding settlements at exactly 1e-4", "{:.3f}",
              funding_at_interest_share, "share"),
    Statistic("funding_q10", "funding rate, 10th percentile (per 8 h)", "{:+.2e}", funding_quantile(0.10)),
    Statistic("funding_q50", "funding rate, median (per 8 h)", "{:+.2e}", funding_quantile(0.50)),
    Statistic("funding_q90", "funding rate, 90th percentile (per 8 h)", "{:+.2e}", funding_quantile(0.90)),
    Statistic("vol_ratio", "annualised vol hourly / daily", "{:.3f}", vol_ratio_hourly_daily, "log"),
    Statistic("ret_autocorr_1h", "hourly return autocorrelation (lag 1)", "{:+.3f}", hourly_return_autocorr, "atanh"),
    Statistic("oi_churn_per_day", "hourly OI churn Σ|ΔOI_h|/OI per day", "{:.3f}", hourly_oi_churn_per_day, "log"),
    Statistic("daily_abs_doi_pct", "mean daily |ΔOI|, %", "{:.2f}", mean_daily_abs_oi_change_pct, "log"),
    Statistic("spearman_liq_range", "Spearman(hourly liquidations, hour's range)", "{:.3f}", spearman_liq_vs_range,
              "atanh"),
    Statistic("volume_over_oi", "traded volume per day / OI", "{:.2f}", volume_over_oi_per_day, "log"),
    Statistic("liq_long_share", "long share of liquidated notional", "{:.3f}", long_share_of_liquidations, "share"),
    Statistic("top5pct_hours_share", "share of liquidations in the top 5 % hours", "{:.3f}", top_hours_share, "share"),
)


def statistics(rows: FactRows) -> dict[str, float]:
    return {s.name: s.compute(rows) for s in STATISTICS}


def _window_days(rng: np.random.Generator, starts: np.ndarray, window_days: int, block_days: int) -> np.ndarray:
    """Day indices of one resampled window: ceil(window_days / block_days) blocks of `block_days` consecutive
    real days, their first days drawn with replacement from `starts`, cut to `window_days` days."""
    k = -(-window_days // block_days)
    first = rng.choice(starts, size=k)
    return (first[:, None] + np.arange(block_days)[None, :]).ravel()[:window_days]


def _block_starts(n_days: int, block_days: int, skip: tuple[int, int] = (0, 0)) -> np.ndarray:
    """First days of the blocks of `block_days` consecutive days inside `n_days` that do not overlap days
    skip[0]..skip[1]-1."""
    s = np.arange(max(0, n_days - block_days + 1))
    return s[(s + block_days <= skip[0]) | (s >= skip[1])]


#: Normal draws behind the simultaneous multiplier of `prediction_band`.
_T_DRAWS = 20_000


def prediction_band(draws: np.ndarray, scales: tuple[str, ...], window_days: int, pool_days: int, block_days: int,
                    coverage: float = BAND_COVERAGE, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """A simultaneous prediction band for one new window from `draws` (resampled real windows x statistics).

    Each statistic is taken to its scale ("log" for positive levels, "atanh" for correlations, "share" and
    "linear" as they are), where its mean m and sd s over the resampled windows stand for real windows of
    that length. A new window's statistic differs from m by its own spread and m's (m rests on `pool_days`
    real days: variance s^2 x window/pool), and s rests on about pool_days / block_days independent blocks,
    so the band is m +- k s sqrt(1 + window/pool) with k the `coverage` quantile of max |t| over the
    statistics (a multivariate t with those degrees of freedom and the draws' correlation): a window like
    the real ones passes *all* statistics with probability `coverage`. The empirical quantiles of the draws
    alone cannot do that: a band from eleven real weeks stops at their extremes, and a new week falls outside
    them on one of 13 statistics most of the time (docs/simulator.md). Shares are cut to [0, 1]. Returns
    (lo, hi, k). A NaN draw (a statistic a resample cannot compute) is left out of its statistic's moments."""
    # A level that is zero in some window (no OI change) cannot go to logs: linear, cut at 0 like a share.
    scales = tuple("share" if sc == "log" and np.any(draws[:, j] <= 0) else sc for j, sc in enumerate(scales))
    x = np.column_stack([_to_scale(draws[:, j], sc) for j, sc in enumerate(scales)])
    ok = np.isfinite(x)
    count = ok.sum(axis=0)
    mean = np.where(count > 0, np.nansum(x, axis=0) / np.maximum(count, 1), np.nan)
    dev = np.where(ok, x - mean, 0.0)
    sd = np.sqrt((dev ** 2).sum(axis=0) / np.maximum(count - 1, 1))
    z = dev / np.where(sd > 0, sd, 1.0)
    corr = z.T @ z / max(z.shape[0] - 1, 1)
    np.fill_diagonal(corr, 1.0)
    w, v = np.linalg.eigh(corr)  # a correlation matrix may be singular (a constant statistic): its PSD root
    root = v * np.sqrt(np.clip(w, 0.0, None))
    dof = max(pool_days / block_days - 1.0, 1.0)
    rng = np.random.default_rng(seed)
    t = (rng.standard_normal((_T_DRAWS, corr.shape[0])) @ root.T) / np.sqrt(rng.chisquare(dof, (_T_DRAWS, 1)) / dof)
    k = float(np.quantile(np.abs(t).max(axis=1), coverage))
    half = k * sd * np.sqrt(1.0 + window_days / pool_days)
    lo = np.array([_from_scale(m - h, sc) for m, h, sc in zip(mean, half, scales, strict=True)])
    hi = np.array([_from_scale(m + h, sc) for m, h, sc in zip(mean, half, scales, strict=True)])
    # The same in every real window (or never computable): the band is that value.
    constant = ~(sd > 1e-9 * (1.0 + np.abs(mean)))
    lo[constant], hi[constant] = np.nanmin(draws[:, constant], axis=0), np.nanmax(draws[:, constant], axis=0)
    return lo, hi, k


def _to_scale(x: np.ndarray, scale: str) -> np.ndarray:
    if scale == "log":
        return np.log(np.where(x > 0, x, np.nan))
    if scale == "atanh":
        return np.arctanh(np.clip(x, -0.999999, 0.999999))
    return x


def _from_scale(y: float, scale: str) -> float:
    if scale == "log":
        return float(np.exp(y))
    if scale == "atanh":
        return float(np.tanh(y))
    if scale == "share":
        return float(np.clip(y, 0.0, 1.0))
    return float(y)


@dataclass(frozen=True)
class Bands:
    """The band of every statistic for a window of `window_days` days, and how it was built."""

    band: dict[str, tuple[float, float]]
    window_days: int
    block_days: int
    resamples: int
    #: Multiplier of each statistic's sd (on its scale) that makes the band hold `coverage` of windows on all.
    k: float


def bands(real: FactRows, window_days: int, resamples: int = BOOTSTRAP_RESAMPLES, coverage: float = BAND_COVERAGE,
          seed: int = 0, block_days: int = BLOCK_DAYS, skip: tuple[int, int] = (0, 0)) -> Bands:
    """A prediction band for a window of `window_days` days: real windows of that length built by a
    moving-block bootstrap of days (blocks of `block_days` consecutive real days starting on any day, drawn
    with replacement; `real` keyed by day, fact_rows(m, 1)), and per statistic the interval a new window of
    that length falls in on every statistic at once with probability `coverage` (`prediction_band`). Days
    skip[0]..skip[1]-1 are never drawn (`held_out_real`)."""
    n_days = int(real.hour["block"].max()) + 1
    starts = _block_starts(n_days, block_days, skip)
    if starts.size == 0:
        what = "week" if block_days == 7 else f"block of {block_days} day(s)"
        raise ValueError(f"the real window holds no complete {what}: it cannot give a band")
    rng = np.random.default_rng(seed)
    draws = np.array([[s.compute(real.take_blocks(_window_days(rng, starts, max(1, window_days), block_days)))
                       for s in STATISTICS] for _ in range(resamples)])
    pool_days = n_days - (min(skip[1], n_days) - min(skip[0], n_days))
    lo, hi, k = prediction_band(draws, tuple(s.scale for s in STATISTICS), max(1, window_days), pool_days,
                                block_days, coverage, seed)
    return Bands({s.name: (float(a), float(b)) for s, a, b in zip(STATISTICS, lo, hi, strict=True)},
                 max(1, window_days), block_days, resamples, k)


@dataclass(frozen=True)
class HeldOut:
    """The real market judged as `compare` judges a simulated one: each real window of the simulated length
    held out in turn against the band built from the days outside it. How often a real window itself fails."""

    windows: int
    all_pass: int
    #: Per statistic, in how many of the held-out windows it fell outside the band.
    failures: dict[str, int]
    #: Per held-out window, how many statistics failed.
    failed_counts: tuple[int, ...]


def held_out_real(real: FactRows, window_days: int, resamples: int = BOOTSTRAP_RESAMPLES,
                  coverage: float = BAND_COVERAGE, seed: int = 0, block_days: int = BLOCK_DAYS) -> HeldOut | None:
    """Hold out each real window of `window_days` days (one starting every `block_days` days), band it with
    blocks drawn from the days outside it (`bands`, `real` keyed by day), and count the statistics that fail;
    None when fewer days than the window remain outside it. With a band of `coverage` for all statistics at
    once, a real window should pass all of them at about that rate if the days outside it stand for it; how
    far below it the real window falls is the non-stationarity the band cannot see (docs/simulator.md)."""
    n_days = int(real.hour["block"].max()) + 1
    n = max(1, window_days)
    if n_days - n < n:
        return None
    failures = {s.name: 0 for s in STATISTICS}
    counts = []
    for start in range(0, n_days - n + 1, block_days):
        b = bands(real, n, resamples, coverage, seed, block_days, skip=(start, start + n)).band
        s = statistics(real.take_blocks(np.arange(start, start + n)))
        bad = [k for k, (lo, hi) in b.items() if not lo <= s[k] <= hi]
        for k in bad:
            failures[k] += 1
        counts.append(len(bad))
    return HeldOut(len(counts), sum(c == 0 for c in counts), failures, tuple(counts))


@dataclass(frozen=True)
class FactRow:
    name: str
    description: str
    simulated: float
    real: float
    band: tuple[float, float]

    @property
    def verdict(self) -> str:
        if not np.isfinite(self.simulated) or not all(np.isfinite(self.band)):
            return "INCONCLUSIVE"
        return "PASS" if self.band[0] <= self.simulated <= self.band[1] else "FAIL"


def compare(simulated: HourlyMarket, real: HourlyMarket, resamples: int = BOOTSTRAP_RESAMPLES,
            seed: int = 0, block_days: int = BLOCK_DAYS) -> list[FactRow]:
    """Each statistic on both markets, with the simultaneous band of real windows as long (in days) as the
    simulated one, resampled in blocks of `block_days` consecutive real days (weeks by default)."""
    return compare_with_bands(simulated, real, resamples, seed, block_days)[0]


def compare_with_bands(simulated: HourlyMarket, real: HourlyMarket, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0, block_days: int = BLOCK_DAYS) -> tuple[list[FactRow], Bands]:
    """`compare`, and the bands with how they were built."""
    sim_rows, real_rows = fact_rows(simulated, 1), fact_rows(real, 1)
    s, r = statistics(sim_rows), statistics(real_rows)
    b = bands(real_rows, simulated.days, resamples, seed=seed, block_days=block_days)
    return [FactRow(st.name, st.description, s[st.name], r[st.name], b.band[st.name]) for st in STATISTICS], b


def format_table(rows: list[FactRow], header: tuple[str, str] = ("simulated", "real"),
                 band_label: str = "band (real weeks)") -> str:
    fmts = {s.name: s.fmt for s in STATISTICS}
    out = [f"{'statistic':<46} {header[0]:>10} {header[1]:>10}   {band_label:<24} verdict"]
    for row in rows:
        f = fmts[row.name]
        band = f"[{f.format(row.band[0])}, {f.format(row.band[1])}]"
        out.append(f"{row.description:<46} {f.format(row.simulated):>10} {f.format(row.real):>10}   {band:<24} "
                   f"{row.verdict}")
    return "\n".join(out)
