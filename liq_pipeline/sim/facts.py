"""Stylized facts of a perpetual-futures market, computed the same way on a simulated and on a real window.

Every statistic is an aggregate over hourly rows (klines, open interest, liquidations), daily rows and
funding settlements, so the real window's own weeks can be resampled to give each statistic a tolerance
band (a block bootstrap over whole weeks: hours inside a week stay together, so intraday structure and the
book's carry-over are kept). A simulated window passes a statistic when its value falls inside the band of
real windows of the same length in weeks. A short real episode (sim/episodes.py) is resampled by whole
days instead (`block_days=1`): it has too few weeks. Plain numpy, no I/O: `fact_series.py` loads the inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

HOURS_PER_DAY = 24
HOURS_PER_WEEK = 168
#: Length of the bootstrap's blocks: whole weeks by default.
BLOCK_DAYS = 7
#: The funding rate Binance charges when the premium is inside the clamp (interest 0.03 %/day per 8 h).
INTEREST_RATE_8H = 1e-4
#: Share of the hours with the most liquidated notional in `top_hours_share`.
TOP_HOURS_FRACTION = 0.05
#: Block-bootstrap resamples behind each band, and the central share of them the band keeps.
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


STATISTICS: tuple[Statistic, ...] = (
    Statistic("liq_pct_oi_per_day", "liquidated notional per day, % of OI", "{:.3f}", liq_pct_of_oi_per_day),
    Statistic("funding_at_interest_share", "funding settlements at exactly 1e-4", "{:.3f}", funding_at_interest_share),
    Statistic("funding_q10", "funding rate, 10th percentile (per 8 h)", "{:+.2e}", funding_quantile(0.10)),
    Statistic("funding_q50", "funding rate, median (per 8 h)", "{:+.2e}", funding_quantile(0.50)),
    Statistic("funding_q90", "funding rate, 90th percentile (per 8 h)", "{:+.2e}", funding_quantile(0.90)),
    Statistic("vol_ratio", "annualised vol hourly / daily", "{:.3f}", vol_ratio_hourly_daily),
    Statistic("ret_autocorr_1h", "hourly return autocorrelation (lag 1)", "{:+.3f}", hourly_return_autocorr),
    Statistic("oi_churn_per_day", "hourly OI churn Σ|ΔOI_h|/OI per day", "{:.3f}", hourly_oi_churn_per_day),
    Statistic("daily_abs_doi_pct", "mean daily |ΔOI|, %", "{:.2f}", mean_daily_abs_oi_change_pct),
    Statistic("spearman_liq_range", "Spearman(hourly liquidations, hour's range)", "{:.3f}", spearman_liq_vs_range),
    Statistic("volume_over_oi", "traded volume per day / OI", "{:.2f}", volume_over_oi_per_day),
    Statistic("liq_long_share", "long share of liquidated notional", "{:.3f}", long_share_of_liquidations),
    Statistic("top5pct_hours_share", "share of liquidations in the top 5 % hours", "{:.3f}", top_hours_share),
)


def statistics(rows: FactRows) -> dict[str, float]:
    return {s.name: s.compute(rows) for s in STATISTICS}


def bands(real: FactRows, n_blocks: int, resamples: int = BOOTSTRAP_RESAMPLES, coverage: float = BAND_COVERAGE,
          seed: int = 0, block_days: int = BLOCK_DAYS) -> dict[str, tuple[float, float]]:
    """Per statistic, the central `coverage` interval over `resamples` windows of `n_blocks` whole real blocks
    (weeks by default; `real` cut into blocks of `block_days` by fact_rows) drawn with replacement (a block
    bootstrap). Only complete blocks are drawn."""
    full = np.flatnonzero(np.bincount(real.hour["block"]) == HOURS_PER_DAY * block_days)
    if full.size == 0:
        what = "week" if block_days == 7 else f"block of {block_days} day(s)"
        raise ValueError(f"the real window holds no complete {what}: it cannot give a band")
    rng = np.random.default_rng(seed)
    draws = np.array([[s.compute(real.take_blocks(rng.choice(full, size=max(1, n_blocks)))) for s in STATISTICS]
                      for _ in range(resamples)])
    lo, hi = np.nanquantile(draws, [(1 - coverage) / 2, (1 + coverage) / 2], axis=0)
    return {s.name: (float(a), float(b)) for s, a, b in zip(STATISTICS, lo, hi, strict=True)}


@dataclass(frozen=True)
class HeldOut:
    """The real market judged as `compare` judges a simulated one: each run of `n_blocks` consecutive real
    blocks held out in turn against the bands of the remaining blocks. How often a real window itself fails."""

    windows: int
    all_pass: int
    #: Per statistic, in how many of the held-out windows it fell outside the band.
    failures: dict[str, int]
    #: Per held-out window, how many statistics failed.
    failed_counts: tuple[int, ...]


def held_out_real(real: FactRows, n_blocks: int, resamples: int = BOOTSTRAP_RESAMPLES,
                  coverage: float = BAND_COVERAGE, seed: int = 0, block_days: int = BLOCK_DAYS) -> HeldOut | None:
    """Hold out each run of `n_blocks` consecutive complete real blocks, band it with the other blocks
    (`bands`), and count the statistics that fail; None when fewer than `n_blocks` blocks would remain to
    resample. A test that needs every statistic to pass is only as strict as this: with 13 statistics at a
    95 % band each, a real window itself rarely passes all of them (docs/simulator.md)."""
    full = np.flatnonzero(np.bincount(real.hour["block"]) == HOURS_PER_DAY * block_days)
    n = max(1, n_blocks)
    if full.size < 2 * n:
        return None
    failures = {s.name: 0 for s in STATISTICS}
    counts = []
    for start in range(full.size - n + 1):
        held = full[start:start + n]
        rest = real.take_blocks(np.setdiff1d(full, held))
        b = bands(rest, n, resamples, coverage, seed, block_days)
        s = statistics(real.take_blocks(held))
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
    """Each statistic on both markets, with the band of real windows as long (in blocks of `block_days`:
    weeks by default) as the simulated one."""
    sim_rows, real_rows = fact_rows(simulated, block_days), fact_rows(real, block_days)
    n_blocks = max(1, int(round(simulated.days / block_days)))
    s, r = statistics(sim_rows), statistics(real_rows)
    b = bands(real_rows, n_blocks, resamples, seed=seed, block_days=block_days)
    return [FactRow(st.name, st.description, s[st.name], r[st.name], b[st.name]) for st in STATISTICS]


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
