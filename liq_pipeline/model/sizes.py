"""Position-size buckets for the tier choice of the liquidation price: from trade sizes when the data has
them, else a documented prior. The one place that decides which, so the levels, the heatmap and the live
map agree and flag the prior the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liq_pipeline.model.levels import SizeBuckets, size_buckets_from_trades

#: The size prior (an assumption, not a measurement): equal shares of notional at log-spaced position sizes
#: from SIZE_PRIOR_MIN_USD to SIZE_PRIOR_MAX_USD (5 buckets: $2k, $10k, $50k, $250k, $1.25M). It spans
#: retail tickets to the block sizes seen on BTCUSDT and ETHUSDT, so on the 2025 BTCUSDT table four
#: fifths of the notional sits in the 0.4 % tier and one fifth in the 0.65 % tier. Sizes only
#: choose the maintenance tier, so a wrong prior moves the large positions' levels by tenths of a
#: percent; it never moves notional between sides or entry bins.
SIZE_PRIOR_MIN_USD = 2_000.0
SIZE_PRIOR_MAX_USD = 1_250_000.0
#: Flag written wherever the prior replaced measured trade sizes.
FLAG_SIZE_PRIOR = "size_prior"


@dataclass(frozen=True)
class SizeChoice:
    """The buckets used, where they came from, and whether they are the prior (`flag` is then set)."""

    buckets: SizeBuckets
    source: str
    flag: str | None = None

    @property
    def is_prior(self) -> bool:
        return self.flag is not None


def size_prior(n_buckets: int = 5) -> SizeBuckets:
    """The documented prior: `n_buckets` equal-weight sizes log-spaced over [SIZE_PRIOR_MIN_USD,
    SIZE_PRIOR_MAX_USD] (one bucket at their geometric mean when n_buckets is 1)."""
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be at least 1, got {n_buckets}")
    if n_buckets == 1:
        sizes = np.array([np.sqrt(SIZE_PRIOR_MIN_USD * SIZE_PRIOR_MAX_USD)])
    else:
        sizes = np.geomspace(SIZE_PRIOR_MIN_USD, SIZE_PRIOR_MAX_USD, n_buckets)
    return SizeBuckets(sizes, np.full(n_buckets, 1.0 / n_buckets))


def choose_sizes(trade_notional_usd: np.ndarray | None, n_buckets: int, source: str,
                 missing_reason: str) -> SizeChoice:
    """Buckets from `trade_notional_usd` (levels.size_buckets_from_trades) when it holds a positive
    finite value, else the prior with `missing_reason` (the true cause: what was absent) in the flag.

    `source` names the trade sizes (e.g. "aggTrades of 2026-01-05") for the metadata.
    """
    x = np.asarray(trade_notional_usd if trade_notional_usd is not None else [], dtype=np.float64)
    if np.any(np.isfinite(x) & (x > 0)):
        return SizeChoice(size_buckets_from_trades(x, n_buckets), source)
    return SizeChoice(size_prior(n_buckets), f"size prior (${SIZE_PRIOR_MIN_USD:,.0f} … ${SIZE_PRIOR_MAX_USD:,.0f}, "
                                             f"{n_buckets} equal buckets)",
                      f"{FLAG_SIZE_PRIOR}: {missing_reason}")
