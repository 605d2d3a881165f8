"""The real-time signals of an instant and what the seed's rules make of them (liquidation-math.md §8).

`PositionSignals` is the one record of mark, OI now and 24 h before and funding, built from the warehouse
for historical days (warehouse/readers/signals.py) or from REST by the live layer; `oi_delta` and the
funding multipliers (the seed's funding tilt, which the `funding` and `hybrid` split rules of the book
engine apply per step) are read from it. `Distribution` is a variant's OI over entry-price bins.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from liq_pipeline.config import MODEL, ModelParams

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
