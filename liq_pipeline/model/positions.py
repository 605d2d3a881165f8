"""Where the open interest sits: the position-distribution variants and the liquidation levels at risk.

From a window volume profile (entry notional per grid bin) and a long probability per bin, each variant
spreads the current open interest over entry prices and sides (liquidation-math.md §8.2–§8.4). The
real-time inputs come through one record, `PositionSignals`, built from the warehouse for historical
days (warehouse/readers/signals.py) or from REST by the live layer. `levels_at_risk` projects a distribution
onto liquidation prices and drops the levels mark price has already crossed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from liq_pipeline.config import MODEL, ModelParams
from liq_pipeline.model import variants
from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.model.levels import LeverageMix, SizeBuckets
from liq_pipeline.model.margin import (
    LONG,
    SHORT,
    BracketTable,
    isolated_liquidation_price_at_leverage,
    max_leverage_at,
)

#: A sample older than this before the instant it stands for counts as missing (OI is 5-minutely or
#: hourly; mark candles are at most 1h).
MAX_SAMPLE_AGE = dt.timedelta(hours=2)
#: Funding settles every 1, 4 or 8 hours: a settlement up to 8h (+ slack) old is the current rate.
MAX_FUNDING_AGE = dt.timedelta(hours=9)

FLAG_NO_MARK = "mark_price_missing"
FLAG_MARK_FROM_TRADES = "mark_price_from_trade_klines"
FLAG_NO_OI = "oi_missing"
FLAG_OI_STALE = "oi_stale"
FLAG_NO_OI_24H = "oi_24h_ago_missing"
FLAG_OI_24H_STALE = "oi_24h_ago_stale"
FLAG_NO_FUNDING = "funding_missing"
FLAG_UNSCALED = "not_scaled_to_oi"


@dataclass(frozen=True)
class PositionSignals:
    """The real-time inputs of the position model, as of one instant (naive UTC).

    Prices and OI in USDT; `funding_rate_8h` is the latest settled rate as an 8-hour equivalent. A None
    means the signal is unavailable; `flags` say why (and whether a value is forward-filled).
    """

    as_of: dt.datetime
    mark_price: float | None
    oi_usd: float | None
    oi_24h_ago_usd: float | None
    funding_rate_8h: float | None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Distribution:
    """Estimated open positions per grid bin of entry price, in USD notional, for one variant."""

    variant: str
    long_usd: np.ndarray
    short_usd: np.ndarray
    #: long / (long + short) before the funding step (liquidation-math.md §8.4, §9.2).
    long_share_pre_funding: np.ndarray
    flags: tuple[str, ...]


def funding_multipliers(funding_rate_8h: float | None, params: ModelParams = MODEL) -> tuple[float, float]:
    """(long ×, short ×) of the funding bias (liquidation-math.md §8.2).

    Applied only when |f| > threshold (0.0001) strictly: bias = tanh(f·10000), long × (1 + 0.2·bias),
    short × (1 − 0.2·bias). f is the 8h-equivalent settled rate; None → no adjustment.
    """
    if funding_rate_8h is None or not abs(funding_rate_8h) > params.funding_threshold:
        return 1.0, 1.0
    bias = float(np.tanh(funding_rate_8h * 10_000))
    return 1.0 + params.funding_gain * bias, 1.0 - params.funding_gain * bias


def oi_delta(signals: PositionSignals) -> float | None:
    """ΔOI = (OI_now − OI_24h_ago) / OI_24h_ago on USDT OI (§8.3); None when either value is missing
    or forward-filled (the seed's fallback is then ΔOI = 0)."""
    if signals.oi_usd is None or signals.oi_24h_ago_usd is None or not signals.oi_24h_ago_usd > 0:
        return None
    if FLAG_OI_STALE in signals.flags or FLAG_OI_24H_STALE in signals.flags:
        return None
    return (signals.oi_usd - signals.oi_24h_ago_usd) / signals.oi_24h_ago_usd


def oi_delta_multiplier(price_mid: np.ndarray, mark_price: float | None, delta: float | None,
                        params: ModelParams = MODEL) -> np.ndarray:
    """Per-bin multiplier of the OI-delta step (§8.3), applied to both sides.

    If |ΔOI| > 0.05, bins with |price − mark| ≤ 0.05·mark get × (1 + 0.5·ΔOI); elsewhere (and without
    ΔOI or mark) × 1.
    """
    price = np.asarray(price_mid, dtype=np.float64)
    if delta is None or mark_price is None or not abs(delta) > params.oi_delta_threshold:
        return np.ones_like(price)
    near = np.abs(price - mark_price) <= params.oi_delta_band * mark_price
    return np.where(near, 1.0 + params.oi_delta_gain * delta, 1.0)


def build_distributions(price_mid: np.ndarray, notional_usd: np.ndarray, long_prob: np.ndarray,
                        signals: PositionSignals, params: ModelParams = MODEL) -> dict[str, Distribution]:
    """The seed's four variants (model/variants.py SEED) over the bins of a window volume profile.

    Inputs per bin: `price_mid` (USD), traded `notional_usd` over the window (USD, the entry weight) and
    the OFI `long_prob` (profile.long_probability). Variants (liquidation-math.md §8):
    - `volume_5050`: notional split 50/50;
    - `ofi`: long = p·notional, short = (1 − p)·notional;
    - `funding`: 50/50 × funding multipliers;
    - `hybrid`: OFI split × OI-delta multiplier (near mark, both sides) × funding multipliers.
    Each is then scaled by one common factor so that Σ(long + short) = `signals.oi_usd`. A missing
    signal degrades its step to the identity with a flag; without OI the variants are left unscaled
    (Σ = window notional) and flagged `not_scaled_to_oi`.
    """
    price = np.asarray(price_mid, dtype=np.float64)
    notional = np.asarray(notional_usd, dtype=np.float64)
    p = np.asarray(long_prob, dtype=np.float64)
    if not (price.shape == notional.shape == p.shape) or price.ndim != 1:
        raise ValueError(f"price_mid, notional_usd and long_prob must be 1-D of one length, got shapes "
                         f"{price.shape}, {notional.shape}, {p.shape}")
    if np.any(~np.isfinite(notional)) or np.any(notional < 0):
        raise ValueError("notional_usd must be finite and non-negative")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("long_prob must lie in [0, 1]")
    if notional.size and not notional.sum() > 0:
        raise ValueError("the volume profile has no traded notional to distribute open interest over")
    if signals.oi_usd is not None and not signals.oi_usd > 0:
        raise ValueError(f"open interest must be positive, got {signals.oi_usd!r}")

    base_flags = list(signals.flags)
    if signals.oi_usd is None:
        base_flags.append(FLAG_UNSCALED)
    f_long, f_short = funding_multipliers(signals.funding_rate_8h, params)
    delta = oi_delta(signals)
    delta_flags = [] if delta is not None else ["oi_delta_off"]
    if delta is not None and signals.mark_price is None:
        delta_flags.append("oi_delta_off_no_mark")
    near = oi_delta_multiplier(price, signals.mark_price, delta, params)

    half = np.full_like(p, 0.5)
    # (split rule → long before funding, short before funding, long ×, short ×, extra flags)
    steps = {
        variants.SPLIT_EVEN: (half * notional, half * notional, 1.0, 1.0, []),
        variants.SPLIT_OFI: (p * notional, (1 - p) * notional, 1.0, 1.0, []),
        variants.SPLIT_FUNDING: (half * notional, half * notional, f_long, f_short, []),
        variants.SPLIT_HYBRID: (p * notional * near, (1 - p) * notional * near, f_long, f_short, delta_flags),
    }
    out: dict[str, Distribution] = {}
    for variant in variants.SEED:
        long_pre, short_pre, m_long, m_short, extra = steps[variants.get(variant).split]
        total_pre = long_pre + short_pre
        share = np.divide(long_pre, total_pre, out=np.full_like(total_pre, 0.5), where=total_pre > 0)
        long_usd, short_usd = long_pre * m_long, short_pre * m_short
        total = float(long_usd.sum() + short_usd.sum())
        scale = signals.oi_usd / total if signals.oi_usd is not None and total > 0 else 1.0
        out[variant] = Distribution(variant, long_usd * scale, short_usd * scale, share,
                                    tuple(base_flags + extra))
    return out


@dataclass(frozen=True)
class LevelsAtRisk:
    """Liquidation notional per (side, grid bin) still at risk. `side` is +1 long / −1 short; `price` is
    the notional-weighted mean liquidation price of the bin (USD)."""

    side: np.ndarray
    bin_id: np.ndarray
    price: np.ndarray
    notional_usd: np.ndarray
    collateral_usd: np.ndarray
    #: Notional beyond an incomplete bracket table or without a liquidation price (not priced).
    unpriced_usd: float
    #: Notional whose liquidation price mark had already crossed (dropped).
    consumed_usd: float


def levels_at_risk(
    entry_price: np.ndarray,
    long_usd: np.ndarray,
    short_usd: np.ndarray,
    mark_low_since: np.ndarray,
    mark_high_since: np.ndarray,
    grid: PriceGrid,
    table: BracketTable,
    leverage_mix: LeverageMix,
    sizes: SizeBuckets,
) -> LevelsAtRisk:
    """Liquidation notional on `grid` of the entry notional per bin, minus what mark has already crossed.

    Pricing is that of `levels.project_levels`: every (entry bin, side, leverage, size) cell carries
    entry notional × leverage weight × size weight, is priced as a freshly opened isolated position
    (WB = N/L) with the exact tier-aware formula (margin.py, Binance USD-M one-way), leverage capped at
    the tier's max_leverage; collateral = notional / leverage.

    Consumption rule: `mark_low_since[e]` / `mark_high_since[e]` are the lowest / highest mark price
    (USD) from entry bin e's last trade in the window up to as_of (NaN when unknown). A long cell of bin
    e whose liquidation price is at or above that low was liquidated (mark touched it after the
    positions could last have been opened) and is dropped; a short cell at or below the high likewise.
    """
    entry = np.asarray(entry_price, dtype=np.float64)
    amounts = np.stack([np.asarray(long_usd, dtype=np.float64), np.asarray(short_usd, dtype=np.float64)])
    lows = np.asarray(mark_low_since, dtype=np.float64)
    highs = np.asarray(mark_high_since, dtype=np.float64)
    if not (entry.shape == amounts.shape[1:] == lows.shape == highs.shape) or entry.ndim != 1:
        raise ValueError("entry_price, long_usd, short_usd, mark_low_since and mark_high_since must be 1-D "
                         "arrays of one length")
    side = np.array([LONG, SHORT], dtype=np.float64)
    size = sizes.notional_usd
    max_lev = max_leverage_at(size, table)
    lev = np.minimum(leverage_mix.leverage[:, None], np.where(np.isnan(max_lev), np.inf, max_lev)[None, :])  # (L, S)
    cell_w = leverage_mix.weight[:, None] * sizes.weight[None, :]

    # Shape (side=2, entry=E, lev=L, size=S), as in levels.project_levels.
    lp = isolated_liquidation_price_at_leverage(
        side[:, None, None, None], size[None, None, None, :], entry[None, :, None, None], lev[None, None, :, :], table
    ).price
    notional = amounts[:, :, None, None] * cell_w[None, None, :, :]
    priced = np.isfinite(lp) & (notional > 0)
    unpriced = float(notional[~np.isfinite(lp)].sum())
    # NaN thresholds (no mark data) compare False: nothing consumed.
    crossed = np.stack([lp[0] >= lows[:, None, None], lp[1] <= highs[:, None, None]])
    consumed = float(notional[priced & crossed].sum())
    keep = priced & ~crossed

    s = np.broadcast_to(side[:, None, None, None], lp.shape)[keep]
    b = grid.bin_id(lp[keep])
    n = notional[keep]
    c = (notional / lev[None, None, :, :])[keep]
    w = lp[keep] * n
    if s.size == 0:
        empty = np.array([], dtype=np.float64)
        return LevelsAtRisk(np.array([], dtype=np.int64), np.array([], dtype=np.int64), empty, empty, empty,
                            unpriced, consumed)
    uniq, inverse = np.unique(np.stack([s, b.astype(np.float64)]), axis=1, return_inverse=True)
    inverse = inverse.ravel()
    m = uniq.shape[1]
    total_n = np.bincount(inverse, weights=n, minlength=m)
    return LevelsAtRisk(
        side=uniq[0].astype(np.int64),
        bin_id=uniq[1].astype(np.int64),
        price=np.bincount(inverse, weights=w, minlength=m) / total_n,
        notional_usd=total_n,
        collateral_usd=np.bincount(inverse, weights=c, minlength=m),
        unpriced_usd=unpriced,
        consumed_usd=consumed,
    )


def mark_extremes_since(since: np.ndarray, candle_open: np.ndarray, candle_low: np.ndarray,
                        candle_high: np.ndarray, mark_now: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Lowest / highest mark price after each instant of `since`, up to as_of (USD).

    Candles (any interval, possibly mixed) count when they open strictly after the instant, so a move
    inside the candle of the last trade, which may predate that trade, is not counted. The mark price
    at as_of (`mark_now`) always counts: a long level above the current mark has been crossed whatever
    the candles say. Instants are numpy datetime64; result NaN where nothing is known.
    """
    t = np.asarray(candle_open).astype("datetime64[us]")
    order = np.argsort(t, kind="stable")
    t = t[order]
    lo = np.asarray(candle_low, dtype=np.float64)[order]
    hi = np.asarray(candle_high, dtype=np.float64)[order]
    # Suffix min/max with a sentinel so "no candle after" gives ±inf.
    suffix_lo = np.append(np.minimum.accumulate(lo[::-1])[::-1], np.inf)
    suffix_hi = np.append(np.maximum.accumulate(hi[::-1])[::-1], -np.inf)
    first_after = np.searchsorted(t, np.asarray(since).astype("datetime64[us]"), side="right")
    low, high = suffix_lo[first_after], suffix_hi[first_after]
    if mark_now is not None:
        low, high = np.minimum(low, mark_now), np.maximum(high, mark_now)
    return np.where(np.isinf(low), np.nan, low), np.where(np.isinf(high), np.nan, high)
