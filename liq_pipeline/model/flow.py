"""The one book engine: a book of position cohorts opened at traded prices, closed by a survival model (or
only where OI falls), consumed by the mark path at their own liquidation prices and aged by funding.

One engine gives the heatmap (a snapshot per step), the end-of-day liquidation levels, the position
distribution and the zones of `flow`. Pure numpy: the per-step arrays come from model/flow_inputs.py
(one SQL aggregation per raw table); the only Python loop is over the day's time steps.

The book is a set of cells, one per (open time, side, entry price, leverage bucket, size bucket), each
priced once at open with the exact tiered isolated formula (margin.py) and then moved by funding:

    LP(t) = LP_open + s_f · EP · F(t) / (1 − s·MMR)        F(t) = Σ settled funding rates since open

(longs pay positive funding out of their isolated margin, so their LP rises towards the mark; shorts
receive it, so theirs rises away from the mark; negative funding does the opposite). Per step, in order:
  (a) open: gross opens G_t = max(ΔOI_t, 0) + turnover_t, turnover_t = OI · (1 − 2^(−Δt/H)) spread over
      the day in proportion to traded notional; G_t is placed at the step's traded prices, split long /
      short by the crowding share p_t, over the leverage mix per side and the day's size buckets;
  (b) settle funding when a settlement falls in the step (LP of every live cell moves as above);
  (c) consume: long cells with LP ≥ the step's mark low and short cells with LP ≤ its mark high; the cells
      opened in the step face only what the step reached after they opened (`extreme_order`: a step that
      closes above its open made its low first, so its new longs face its close instead of its low);
  (d) close: the book above OI_t is closed with a hazard h ∝ (L/10)^γ / (1 + age/τ) (high leverage and
      young positions leave first), so Σ book = OI after every step once the book is full;
  (e) snapshot notional per side and grid bin of LP(t).
Between (c) and (d) every cell decays by 2^(−Δt/half-life) when the variant's rules set one (off by default).
A variant (model/variants.py) is a set of rules for this one engine: its split rule sets p_t
(`long_share_of_opens`), its leverage mix and close rule set the parameters (`params_for`).
Σ(long + short) of the book follows OI, a contract counting once, as in the seed variants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from liq_pipeline.config import FLOW, MODEL, FlowParams, ModelParams
from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.model.levels import SizeBuckets
from liq_pipeline.model.margin import BracketTable, isolated_liquidation_price_at_leverage, max_leverage_at
from liq_pipeline.model.variants import (
    SPLIT_CROWDING,
    SPLIT_EVEN,
    SPLIT_FUNDING,
    SPLIT_HYBRID,
    SPLIT_OFI,
    Variant,
)

MS_PER_HOUR = 3_600_000
LONG_ROW, SHORT_ROW = 0, 1

FLAG_NO_FUNDING = "crowding: funding missing"
FLAG_NO_PREMIUM = "crowding: premium index missing"
FLAG_NO_ACCOUNTS = "crowding: account long/short ratio missing"
FLAG_NO_TAKER = "crowding: no taker flow during OI increases"
FLAG_NO_CROWDING = "crowding: no signal at all, opens split 50/50"
FLAG_SPLIT_NO_FUNDING = "split: funding missing all day, no funding tilt"
FLAG_SPLIT_NO_OFI = "split: no OFI bins of the previous day, opens split 50/50 there"
FLAG_NO_OI = "open interest unknown: book scaled to the start book, turnover from the prior half-life"


# ---------------------------------------------------------------------------------------------- the book
@dataclass(frozen=True)
class Book:
    """The cells of the book (all arrays of one length n). Times are ms since the epoch (UTC)."""

    open_ms: np.ndarray  # int64
    side: np.ndarray  # int8, +1 long / −1 short
    entry_price: np.ndarray
    lev_bucket: np.ndarray  # int16, index into FlowParams.leverages
    leverage: np.ndarray  # effective leverage (capped by the tier's max at the cell's size)
    size_usd: np.ndarray  # representative position notional of the cell's size bucket
    mmr: np.ndarray  # maintenance margin ratio of the tier at LP_open
    lp_open: np.ndarray  # liquidation price at open (fresh isolated, exact tiered formula)
    funding_paid: np.ndarray  # F: Σ settled funding rates since open (positive = longs paid)
    weight: np.ndarray  # the mix weight of (side, bucket) the cell was opened with
    notional_usd: np.ndarray

    FIELDS = ("open_ms", "side", "entry_price", "lev_bucket", "leverage", "size_usd", "mmr", "lp_open",
              "funding_paid", "weight", "notional_usd")

    @classmethod
    def empty(cls) -> Book:
        return cls.from_columns({f: np.zeros(0) for f in cls.FIELDS})

    @classmethod
    def from_columns(cls, cols: dict) -> Book:
        """From a mapping of the FIELDS (a frame's columns); checks lengths, sides and values."""
        missing = [f for f in cls.FIELDS if f not in cols]
        if missing:
            raise ValueError(f"flow book is missing columns {missing}")
        arr = {f: np.asarray(cols[f]) for f in cls.FIELDS}
        n = {a.shape for a in arr.values()}
        if len(n) != 1 or len(next(iter(n))) != 1:
            raise ValueError(f"flow book columns must be 1-D of one length, got shapes {sorted(n)}")
        side = arr["side"].astype(np.int8)
        if side.size and not np.isin(side, (1, -1)).all():
            raise ValueError("flow book side must be +1 (long) or -1 (short)")
        notional = arr["notional_usd"].astype(np.float64)
        if np.any(~np.isfinite(notional)) or np.any(notional < 0):
            raise ValueError("flow book notional must be finite and non-negative")
        return cls(arr["open_ms"].astype(np.int64), side, arr["entry_price"].astype(np.float64),
                    arr["lev_bucket"].astype(np.int16), arr["leverage"].astype(np.float64),
                    arr["size_usd"].astype(np.float64), arr["mmr"].astype(np.float64),
                    arr["lp_open"].astype(np.float64), arr["funding_paid"].astype(np.float64),
                    arr["weight"].astype(np.float64), notional)

    def __len__(self) -> int:
        return int(self.notional_usd.size)

    def columns(self) -> dict[str, np.ndarray]:
        return {f: getattr(self, f) for f in self.FIELDS}

    def liq_price(self, extra_funding: np.ndarray | float = 0.0) -> np.ndarray:
        """LP now: LP_open + EP·F/(1 − s·MMR) (isolated margin changed by the funding paid or received)."""
        f = self.funding_paid + extra_funding
        return self.lp_open + self.entry_price * f / (1.0 - self.side * self.mmr)

    @property
    def total_usd(self) -> float:
        return float(self.notional_usd.sum())

    def long_share(self) -> float:
        total = self.notional_usd.sum()
        return float(self.notional_usd[self.side > 0].sum() / total) if total > 0 else float("nan")


def concat_books(*books: Book) -> Book:
    return Book.from_columns({f: np.concatenate([getattr(b, f) for b in books]) for f in Book.FIELDS})


def _groups(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(key, axis=1, return_index=True, return_inverse=True) without the structured-array sort:
    groups of equal columns in lexicographic order, each group's first column and every column's group."""
    order = np.lexsort(key[::-1])  # stable: equal columns keep their order, so the first is the first seen
    sk = key[:, order]
    new = np.concatenate([[True], np.any(sk[:, 1:] != sk[:, :-1], axis=0)])
    inverse = np.empty(order.size, dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return order[new], inverse


def compact(book: Book, now_ms: int, params: FlowParams = FLOW, min_usd: float = 1e-6) -> tuple[Book, float]:
    """Merge cells of one (open hour, side, entry price, bucket, leverage, size, funding paid) into one — cells older
    than `merge_after_hours` by open day instead of hour, at their notional-weighted mean open time (cells
    between two funding settlements share the funding paid, so a day holds at most a few such cohorts) —
    drop empty cells and cells older than `max_age_days`. Returns the book and the notional that expired (USD).
    """
    keep = book.notional_usd > min_usd
    old = book.open_ms < now_ms - params.max_age_days * 24 * MS_PER_HOUR
    expired = float(book.notional_usd[keep & old].sum())
    cols = {f: v[keep & ~old] for f, v in book.columns().items()}
    if cols["notional_usd"].size == 0:
        return Book.empty(), expired
    hour = cols["open_ms"] // MS_PER_HOUR
    coarse = cols["open_ms"] < now_ms - params.merge_after_hours * MS_PER_HOUR
    period = np.where(coarse, hour // 24 * 24 - 1, hour)  # −1: a day's cohort never shares a key with an hour's
    key = np.stack([period, cols["side"], cols["lev_bucket"], np.round(cols["leverage"], 6), np.round(cols["entry_price"], 8),
                    np.round(cols["size_usd"], 4), np.round(cols["funding_paid"], 12)])
    first, inverse = _groups(key)
    merged = {f: v[first] for f, v in cols.items()}
    n = np.bincount(inverse, weights=cols["notional_usd"], minlength=first.size)
    mean_open = np.bincount(inverse, weights=cols["notional_usd"] * (cols["open_ms"] - now_ms), minlength=first.size)
    merged["open_ms"] = np.where(np.bincount(inverse, weights=coarse, minlength=first.size) > 0,
                                 now_ms + np.round(mean_open / np.where(n > 0, n, 1.0)).astype(np.int64),
                                 hour[first] * MS_PER_HOUR)
    merged["notional_usd"] = n
    return Book.from_columns(merged), expired


# ---------------------------------------------------------------------------------------------- mix
@dataclass(frozen=True)
class SideMix:
    """Leverage mix at open per side (weights over FlowParams.leverages, each summing to 1) and the
    leveraged share of the book per side (the scale of the liquidation map)."""

    long: np.ndarray
    short: np.ndarray
    leveraged_share_long: float
    leveraged_share_short: float
    source: str  # "prior" or "learned"

    @classmethod
    def prior(cls, params: FlowParams = FLOW) -> SideMix:
        w = np.asarray(params.prior_weights, dtype=np.float64)
        if w.shape != (len(params.leverages),) or abs(w.sum() - 1) > 1e-9 or np.any(w < 0):
            raise ValueError("FlowParams.prior_weights must be non-negative, one per leverage, and sum to 1")
        return cls(w, w.copy(), params.prior_leveraged_share, params.prior_leveraged_share, "prior")

    def weights(self, side: int) -> np.ndarray:
        return self.long if side > 0 else self.short


# ---------------------------------------------------------------------------------------------- inputs
@dataclass
class FlowInputs:
    """Per-step arrays of one symbol-day (T steps; E entry bins). Amounts USD, prices USD, times ms."""

    step_start_ms: np.ndarray  # (T,) int64
    step_ms: int
    mark_high: np.ndarray  # (T,) nan = no candle
    mark_low: np.ndarray
    oi_start_usd: np.ndarray  # (T,) nan = unknown
    oi_end_usd: np.ndarray
    entry_price: np.ndarray  # (E,) bin mids
    traded_usd: np.ndarray  # (T, E)
    taker_buy_usd: np.ndarray  # (T,)
    taker_sell_usd: np.ndarray  # (T,)
    settle_ms: np.ndarray  # funding settlements in the day, ms (…, day end] inclusive of the as-of instant
    settle_rate: np.ndarray  # the rate settled (per interval, not 8h-equivalent): what margins pay
    funding_8h: np.ndarray  # (T,) latest settled 8h-equivalent rate at or before each step end
    premium: np.ndarray  # (T,) mean premium index over the step (nan = none)
    account_long_share: np.ndarray  # (T,) from count_long_short_ratio r: r / (1 + r)
    sizes: SizeBuckets
    #: (E,) OFI long probability of each entry bin's window (model.ofi_bins of D−1; nan = none): the seed's
    #: `ofi` and `hybrid` split rules read it; None when not loaded.
    entry_long_prob: np.ndarray | None = None
    #: (T,) mark (or last) price at each step's end (nan = none): which extreme a step reached first (below).
    mark_close: np.ndarray | None = None

    @property
    def n_steps(self) -> int:
        return int(self.step_start_ms.size)


#: Binance's funding formula (reference/binance-data.md): F = P + clamp(I − P, ±FUNDING_CLAMP), I the interest
#: rate per 8 h. Whenever the premium P lies in [−0.04 %, +0.06 %] the rate is exactly I: the neutral level.
FUNDING_INTEREST = 0.0001
FUNDING_CLAMP = 0.0005


def premium_as_funding(premium: np.ndarray) -> np.ndarray:
    """The funding rate a premium index settles at, F = P + clamp(I − P, ±0.05 %): the premium read on the scale
    where neutral is I (issue 26 round 6). Read as it was, with 0 as neutral, the simulated markets' premium
    (about −0.045 %, inside the band where F = I) put the opens' long share at 0.36-0.38 while 52-63 % of the
    open notional was long; funding (0.47-0.49) and the premium are one signal, now on one scale."""
    p = np.asarray(premium, dtype=np.float64)
    return p + np.clip(FUNDING_INTEREST - p, -FUNDING_CLAMP, FUNDING_CLAMP)


def crowding(inputs: FlowInputs, taker_window_steps: int = 16) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """Long share of the notional opened in each step, from public crowding signals (each in [0.2, 0.8]):

    funding  p = 0.5 + 0.3·tanh(1000·(f − 0.0001))   (f: latest settled 8h-equivalent rate, 0.0001 = interest)
    premium  p = 0.5 + 0.3·tanh(1000·(F(P) − 0.0001)) (P: premium index over the step, read as the funding rate
                                            it settles: F(P) = P + clamp(0.0001 − P, ±0.0005), Binance's formula)
    accounts p = r / (1 + r)                         (r: count_long_short_ratio of the metrics)
    taker    p = Σ taker buy / Σ taker volume over the steps with rising OI in the last `taker_window_steps`
    p_t = 0.5 + mean over the signals present at t of (p_k − 0.5); a signal missing all day is flagged;
    with none the opens split 50/50 (flagged).
    """
    T = inputs.n_steps
    f = np.asarray(inputs.funding_8h, dtype=np.float64)
    signals = {
        "funding": 0.5 + 0.3 * np.tanh(1000.0 * (f - 0.0001)),
        "premium": 0.5 + 0.3 * np.tanh(1000.0 * (premium_as_funding(inputs.premium) - FUNDING_INTEREST)),
        "accounts": np.asarray(inputs.account_long_share, dtype=np.float64),
    }
    rising = np.nan_to_num(inputs.oi_end_usd - inputs.oi_start_usd, nan=0.0) > 0
    buy = np.where(rising, inputs.taker_buy_usd, 0.0)
    vol = np.where(rising, inputs.taker_buy_usd + inputs.taker_sell_usd, 0.0)
    cb, cv = np.concatenate([[0.0], np.cumsum(buy)]), np.concatenate([[0.0], np.cumsum(vol)])
    lo = np.maximum(np.arange(T) + 1 - taker_window_steps, 0)
    wb, wv = cb[1:] - cb[lo], cv[1:] - cv[lo]
    signals["taker"] = np.where(wv > 0, wb / np.where(wv > 0, wv, 1.0), np.nan)
    flags = []
    for name, flag in (("funding", FLAG_NO_FUNDING), ("premium", FLAG_NO_PREMIUM), ("accounts", FLAG_NO_ACCOUNTS),
                       ("taker", FLAG_NO_TAKER)):
        signals[name] = np.clip(signals[name], 0.2, 0.8)
        if not np.isfinite(signals[name]).any():
            flags.append(flag)
    stack = np.stack(list(signals.values()))
    have = np.isfinite(stack)
    n = have.sum(axis=0)
    p = 0.5 + np.where(n > 0, np.nansum(np.where(have, stack - 0.5, 0.0), axis=0) / np.maximum(n, 1), 0.0)
    if not have.any():
        flags.append(FLAG_NO_CROWDING)
    return p, signals, flags


def params_for(variant: Variant, flow: FlowParams = FLOW, model: ModelParams = MODEL) -> FlowParams:
    """The engine's parameters under a variant's rules (model/variants.py).

    Leverage mix `seed`: ModelParams' leverages and weights at open (5/10/20/50/100x at 20/35/25/15/5 %, each
    value alone, as the seed placed them), the whole book leveraged (share 1). Close `until_crossed`: no turnover (H = ∞: opens only where OI rises)
    and a uniform hazard (γ = 0, τ = ∞: where OI falls the book shrinks pro rata), so a position leaves the
    book only by being crossed, by the book shrinking with OI, or by expiring after `max_age_days`; with
    LIQ_HEATMAP_HALF_LIFE_HOURS set, every cell also decays with that half-life (off by default).
    """
    import dataclasses

    p = flow
    if variant.leverage_mix == "seed":
        p = dataclasses.replace(p, leverages=tuple(model.leverages), prior_weights=tuple(model.leverage_weights),
                                prior_leveraged_share=1.0, leverage_points=1)
    if variant.close == "until_crossed":
        p = dataclasses.replace(p, half_life_hours=math.inf, age_hazard_hours=math.inf, leverage_hazard_exponent=0.0,
                                survival_candidates=(), decay_half_life_hours=model.heatmap_half_life_hours)
    return p


def long_share_of_opens(inputs: FlowInputs, variant: Variant | None = None, model: ModelParams = MODEL
                        ) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """Long share of the notional opened, per step (T,) or per step and entry bin (T, E), by the variant's
    split rule (None: `crowding`, the flow variant's):

    even     p = 0.5
    ofi      p = q_e                       (q: OFI long probability of the entry bin, 0.5 where none)
    funding  p = f_L,t / (f_L,t + f_S,t)   (f: funding multipliers of the latest settled 8h rate at t:
                                            1 ± 0.2·tanh(10⁴·f) when |f| > 1e-4, else 1; liquidation-math.md §8.2)
    hybrid   p = q_e·f_L,t / (q_e·f_L,t + (1 − q_e)·f_S,t)
    crowding see `crowding`.
    The seed's static distribution applied the same rules to the window profile with the end-of-day funding;
    here each step uses what is known at its end (funding) or at the start of the day (OFI of D−1).
    """
    split = SPLIT_CROWDING if variant is None else variant.split
    if split == SPLIT_CROWDING:
        return crowding(inputs)
    T, E = inputs.n_steps, inputs.entry_price.size
    flags: list[str] = []
    f_long = f_short = np.ones(T)
    if split in (SPLIT_FUNDING, SPLIT_HYBRID):
        f = np.asarray(inputs.funding_8h, dtype=np.float64)
        on = np.isfinite(f) & (np.abs(np.nan_to_num(f)) > model.funding_threshold)
        bias = np.where(on, np.tanh(np.nan_to_num(f) * 10_000), 0.0)
        f_long, f_short = 1.0 + model.funding_gain * bias, 1.0 - model.funding_gain * bias
        if not np.isfinite(f).any():
            flags.append(FLAG_SPLIT_NO_FUNDING)
    q = np.full(E, 0.5)
    if split in (SPLIT_OFI, SPLIT_HYBRID):
        got = np.full(E, np.nan) if inputs.entry_long_prob is None else np.asarray(inputs.entry_long_prob, np.float64)
        if got.shape != (E,):
            raise ValueError(f"entry_long_prob has shape {got.shape}, expected ({E},)")
        if E and not np.isfinite(got).all():
            flags.append(FLAG_SPLIT_NO_OFI)
        q = np.where(np.isfinite(got), got, 0.5)
    if split == SPLIT_EVEN:
        p = np.full(T, 0.5)
    elif split == SPLIT_FUNDING:
        p = f_long / (f_long + f_short)
    elif split == SPLIT_OFI:
        p = np.broadcast_to(q[None, :], (T, E)).copy()
    elif split == SPLIT_HYBRID:
        up, down = q[None, :] * f_long[:, None], (1.0 - q[None, :]) * f_short[:, None]
        p = up / (up + down)
    else:
        raise ValueError(f"unknown split rule {split!r}")
    return p, {}, flags


def gross_opens(inputs: FlowInputs, start_total_usd: float, params: FlowParams = FLOW) -> tuple[np.ndarray, list[str]]:
    """G_t = max(ΔOI_t, 0) + turnover_t (USD), turnover_t = OI_ref · T · (1 − 2^(−Δt/H)) · V_t / ΣV.

    ΔOI_t is 0 where OI is unknown at a bound of the step; OI_ref is the day's mean known OI (the start
    book's total when OI is unknown all day, flagged). Opens are 0 in steps without trades.
    """
    flags = []
    delta = np.nan_to_num(inputs.oi_end_usd - inputs.oi_start_usd, nan=0.0)
    oi = np.concatenate([inputs.oi_start_usd, inputs.oi_end_usd])
    oi_ref = float(np.nanmean(oi)) if np.isfinite(oi).any() else start_total_usd
    if not np.isfinite(oi).any():
        flags.append(FLAG_NO_OI)
    volume = inputs.traded_usd.sum(axis=1)
    T = inputs.n_steps
    per_step = 1.0 - 2.0 ** (-(inputs.step_ms / MS_PER_HOUR) / params.half_life_hours)
    turnover = oi_ref * T * per_step * volume / volume.sum() if volume.sum() > 0 else np.zeros(T)
    return np.where(volume > 0, np.maximum(delta, 0.0) + turnover, 0.0), flags


def bucket_points(leverages, points: int) -> np.ndarray:
    """(L, points) leverages drawing each bucket: log-spaced at the centres of `points` equal parts of the
    bucket's interval, the interval running between the geometric midpoints of neighbouring buckets (the
    lowest bucket as far below its value as its upper edge is above it, the highest bucket up to its value,
    the bracket maximum). `points` = 1 gives the bucket values themselves."""
    lev = np.asarray(leverages, dtype=np.float64)
    if points < 1:
        raise ValueError(f"leverage points per bucket must be >= 1, got {points}")
    if points == 1 or lev.size < 2:
        return lev[:, None].copy()
    if np.any(np.diff(lev) <= 0):
        raise ValueError("leverage buckets must be strictly increasing")
    mid = np.sqrt(lev[1:] * lev[:-1])
    lo = np.log(np.concatenate([[lev[0] ** 2 / mid[0]], mid]))
    hi = np.log(np.concatenate([mid, [lev[-1]]]))
    frac = (np.arange(points) + 0.5) / points
    return np.exp(lo[:, None] + (hi - lo)[:, None] * frac[None, :])


def new_cells(inputs: FlowInputs, opens_usd: np.ndarray, long_share: np.ndarray, mix: SideMix,
              table: BracketTable, params: FlowParams = FLOW) -> tuple[Book, np.ndarray, float]:
    """The cells opened during the day, sorted by step, and each step's [start, end) slice into them.

    Opens of step t at entry bin e: G_t · V_te / V_t; long = × p_t, short = × (1 − p_t); then × mix weight
    of (side, leverage bucket) / points per bucket (each bucket drawn at `bucket_points`) × size-bucket
    weight. Leverage is capped at the tier's max for the cell's size; a cell the table cannot price (beyond
    an incomplete table, or no LP) is dropped and counted. A cell's `weight` is its bucket's mix weight.
    Returns (cells, offsets (T+1,), unpriced USD).
    """
    traded = inputs.traded_usd
    vol = traded.sum(axis=1)
    share_e = traded / np.where(vol > 0, vol, 1.0)[:, None]
    amount = opens_usd[:, None] * share_e  # (T, E)
    t_idx, e_idx = np.nonzero(amount > 0)
    points = bucket_points(params.leverages, params.leverage_points)  # (B, k)
    lev = points.ravel()
    bucket = np.repeat(np.arange(points.shape[0]), points.shape[1])
    L, S = lev.size, inputs.sizes.notional_usd.size
    if t_idx.size == 0:
        return Book.empty(), np.zeros(inputs.n_steps + 1, dtype=np.int64), 0.0
    side = np.array([1, -1], dtype=np.int8)
    w_side = np.stack([mix.long, mix.short])[:, bucket]  # (2, L): each point carries its bucket's weight
    p = long_share[t_idx, e_idx] if long_share.ndim == 2 else long_share[t_idx]
    side_amount = np.stack([amount[t_idx, e_idx] * p, amount[t_idx, e_idx] * (1 - p)], axis=1)  # (P, 2)
    size = inputs.sizes.notional_usd
    max_lev = max_leverage_at(size, table)
    eff_lev = np.minimum(lev[:, None], np.where(np.isnan(max_lev), np.inf, max_lev)[None, :])  # (L, S)
    shape = (t_idx.size, 2, L, S)
    entry = inputs.entry_price[e_idx]
    lp = isolated_liquidation_price_at_leverage(side[None, :, None, None], size[None, None, None, :],
                                                entry[:, None, None, None], eff_lev[None, None, :, :], table)
    tier = np.clip(lp.bracket - 1, 0, len(table.mmr) - 1)
    mmr = np.broadcast_to(table.mmr[tier], shape)
    weight = np.broadcast_to(w_side[None, :, :, None], shape)
    notional = side_amount[:, :, None, None] * weight * inputs.sizes.weight[None, None, None, :] / points.shape[1]
    priced = np.broadcast_to(np.isfinite(lp.price), shape)
    unpriced = float(notional[~priced].sum())
    keep = priced & (notional > 0)

    def b(x):
        return np.broadcast_to(x, shape)[keep]

    start_ms = inputs.step_start_ms[t_idx]
    cells = Book.from_columns({
        "open_ms": b(start_ms[:, None, None, None]),
        "side": b(side[None, :, None, None]),
        "entry_price": b(entry[:, None, None, None]),
        "lev_bucket": b(bucket[None, None, :, None]),
        "leverage": b(eff_lev[None, None, :, :]),
        "size_usd": b(size[None, None, None, :]),
        "mmr": b(mmr),
        "lp_open": b(lp.price),
        "funding_paid": np.zeros(int(keep.sum())),
        "weight": b(weight),
        "notional_usd": notional[keep],
    })
    step_of_cell = b(t_idx[:, None, None, None])  # nonzero() is sorted by t, so cells are too
    offsets = np.searchsorted(step_of_cell, np.arange(inputs.n_steps + 1), side="left")
    return cells, offsets, unpriced


# ---------------------------------------------------------------------------------------------- the day
@dataclass
class FlowDay:
    """Output of `run_day`: snapshot cells (non-zero), the end book and per-step bookkeeping (USD)."""

    step: np.ndarray  # (R,) snapshot at the end of this step
    side: np.ndarray  # (R,) +1 / −1
    bin_id: np.ndarray  # (R,)
    notional_usd: np.ndarray  # (R,) book notional (before the leveraged-share scale)
    end_book: Book
    opened_usd: np.ndarray  # (T,)
    closed_usd: np.ndarray  # (T,)
    consumed_usd: np.ndarray  # (T, 2) long, short
    #: Consumed notional per unit of mix weight, (T, 2, L): what the calibration regresses liquidations on.
    consumed_per_weight: np.ndarray
    funding_settled: np.ndarray  # (T,) rate settled in the step (0 if none)
    long_share_open: np.ndarray  # (T,) traded-notional-weighted mean over the step's entry bins
    expired_usd: float
    unpriced_usd: float
    flags: list[str] = field(default_factory=list)
    signals: dict[str, np.ndarray] = field(default_factory=dict)


def extreme_order(low: np.ndarray, high: np.ndarray, mark_close: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per step, the low and high that the cells opened in the step face, from the candle's direction (the
    usual OHLC path: a step that closes above its open made its low first, one that closes below made its
    high first; the open is the previous step's close). The new cells of a step that made its low first face
    its close instead of its low (the price went no lower after they opened than where it ended, as far as
    the candle says), and likewise for the high. A step whose direction is unknown (the day's first, a
    missing close, an unchanged price) exposes its new cells to both extremes, as older cells always are.
    Returns (new_low, new_high), each (T,)."""
    lo, hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if mark_close is None:
        return lo.copy(), hi.copy()
    c = np.asarray(mark_close, dtype=np.float64)
    if c.shape != lo.shape:
        raise ValueError(f"mark_close has shape {c.shape}, expected {lo.shape}")
    move = np.nan_to_num(np.concatenate([[np.nan], c[1:] - c[:-1]]), nan=0.0)
    return np.where(move > 0, c, lo), np.where(move < 0, c, hi)


def run_day(start: Book, inputs: FlowInputs, grid: PriceGrid, table: BracketTable, mix: SideMix,
            params: FlowParams = FLOW, snapshots: bool = True, variant: Variant | None = None) -> FlowDay:
    """Evolve the book through one day's steps (see the module docstring for the order of operations).

    `variant`: the rules the book runs under (model/variants.py); its split rule sets the long share of the
    opens (`long_share_of_opens`), its leverage mix and close rule come in through `mix` and `params`
    (`params_for`). None: the flow variant's crowding split.

    `snapshots=False` skips the per-step map (the candidate books of the survival fit need only the
    consumption and the end book); the returned snapshot arrays are then empty."""
    T = inputs.n_steps
    for name in ("mark_high", "mark_low", "oi_start_usd", "oi_end_usd", "taker_buy_usd", "taker_sell_usd",
                 "funding_8h", "premium", "account_long_share"):
        if np.shape(getattr(inputs, name)) != (T,):
            raise ValueError(f"{name} has shape {np.shape(getattr(inputs, name))}, expected ({T},)")
    if inputs.traded_usd.shape != (T, inputs.entry_price.size):
        raise ValueError(f"traded_usd has shape {inputs.traded_usd.shape}, expected ({T}, {inputs.entry_price.size})")
    L = len(params.leverages)
    p, signals, flags = long_share_of_opens(inputs, variant)
    opens, more = gross_opens(inputs, start.total_usd, params)
    flags += more
    fresh, offsets, unpriced = new_cells(inputs, opens, p, mix, table, params)
    book = concat_books(start, fresh)
    n0 = len(start)
    N = np.concatenate([start.notional_usd, np.zeros(len(fresh))])
    add = book.notional_usd.copy()
    is_long = book.side > 0
    row = np.where(is_long, LONG_ROW, SHORT_ROW)
    lev_key = row * L + book.lev_bucket
    lev_factor = (book.leverage / 10.0) ** params.leverage_hazard_exponent
    inv_weight = 1.0 / np.where(book.weight > 0, book.weight, np.inf)

    # Funding settled per step: a settlement at instant S belongs to the step (start, end] holding it.
    step_end = inputs.step_start_ms + inputs.step_ms
    settle_step = np.searchsorted(step_end, np.asarray(inputs.settle_ms, dtype=np.int64), side="left")
    ok = (settle_step < T) & (np.asarray(inputs.settle_ms) > inputs.step_start_ms[0])
    settled = np.zeros(T)
    np.add.at(settled, settle_step[ok], np.asarray(inputs.settle_rate, dtype=np.float64)[ok])

    # LP per funding epoch: paid(cell) += rate of every settlement after the cell opened.
    paid = book.funding_paid.copy()
    lps = [book.liq_price()]
    epoch_of_step = np.zeros(T, dtype=np.int64)
    for t in np.nonzero(settled)[0]:
        paid = paid + np.where(book.open_ms < step_end[t], settled[t], 0.0)
        lps.append(book.lp_open + book.entry_price * paid / (1.0 - book.side * book.mmr))
        epoch_of_step[t:] = len(lps) - 1
    # A long whose LP is ≤ 0 has no liquidation price: it never liquidates and is drawn nowhere (sink column).
    valid = [np.isfinite(x) & (x > 0) for x in lps]
    if snapshots:  # the snapshot column of every cell per epoch: its side and the grid bin of its LP
        epochs = [grid.bin_id(np.where(v, x, 1.0)) for x, v in zip(lps, valid, strict=True)]
        uniq = np.unique(np.concatenate([e[v] for e, v in zip(epochs, valid, strict=True)]))
        K = uniq.size
        keys = [np.where(v, row * K + np.searchsorted(uniq, e), 2 * K) for e, v in zip(epochs, valid, strict=True)]
    else:  # no map: nothing to key (the candidate books of the survival fit)
        uniq, K, keys = np.zeros(0, dtype=np.int64), 0, []

    h = params.decay_half_life_hours
    decay = 2.0 ** (-(inputs.step_ms / MS_PER_HOUR) / h) if h else 1.0
    snaps = np.zeros((T, 2 * K + 1) if snapshots else (T, 1))
    closed = np.zeros(T)
    consumed = np.zeros((T, 2))
    per_weight = np.zeros((T, 2, L))
    low = np.asarray(inputs.mark_low, dtype=np.float64)
    high = np.asarray(inputs.mark_high, dtype=np.float64)
    new_low, new_high = extreme_order(low, high, inputs.mark_close)
    # Cells past z open later in the day and hold 0 until then, so each step works on N[:z] only. The sums
    # stay over the whole book (`work` is 0 past z): numpy's pairwise sum depends on the array's length, and
    # the same length gives the same bits as before this was restricted (issue 29).
    # Per epoch, a long's LP where it can liquidate (−inf elsewhere) and a short's (+inf for longs): one
    # comparison per side finds the step's crossed cells. Every array op of the loop writes into buffers
    # made once: the same operations on the same operands (the same bits, tested), without allocating and
    # faulting in a book-sized temporary several times a step.
    long_lp = [np.where(is_long & v, x, -np.inf) for x, v in zip(lps, valid, strict=True)]
    short_lp = [np.where(is_long, np.inf, x) for x in lps]
    work = np.zeros(N.size)
    hit_buf, other_buf = np.empty(N.size, dtype=bool), np.empty(N.size, dtype=bool)
    age_buf, h_buf, x_buf = np.empty(N.size, dtype=np.int64), np.empty(N.size), np.empty(N.size)
    for t in range(T):
        a, z = n0 + offsets[t], n0 + offsets[t + 1]
        N[a:z] = add[a:z]
        Nz = N[:z]
        ep = epoch_of_step[t]
        hit = hit_buf[:z]
        if np.isfinite(low[t]):
            np.greater_equal(long_lp[ep][:z], low[t], out=hit)
            if np.isfinite(high[t]):
                hit |= np.less_equal(short_lp[ep][:z], high[t], out=other_buf[:z])
        elif np.isfinite(high[t]):
            np.less_equal(short_lp[ep][:z], high[t], out=hit)
        else:
            hit[:] = False
        if a < z and (new_low[t] != low[t] or new_high[t] != high[t]):
            lp_t = lps[ep][a:z]
            fresh_long = is_long[a:z]
            fresh_hit = np.zeros(z - a, dtype=bool)
            if np.isfinite(new_low[t]):
                fresh_hit |= fresh_long & (lp_t >= new_low[t]) & valid[ep][a:z]
            if np.isfinite(new_high[t]):
                fresh_hit |= ~fresh_long & (lp_t <= new_high[t])
            hit[a:z] = fresh_hit
        gone_at = np.flatnonzero(hit)
        gone_at = gone_at[Nz[gone_at] > 0]
        if gone_at.size:
            gone = Nz[gone_at]
            consumed[t] = np.bincount(row[gone_at], weights=gone, minlength=2)
            per_weight[t] = np.bincount(lev_key[gone_at], weights=gone * inv_weight[gone_at],
                                        minlength=2 * L).reshape(2, L)
            Nz[gone_at] = 0.0
        if decay != 1.0:
            Nz *= decay
        target = inputs.oi_end_usd[t]
        excess = N.sum() - target if np.isfinite(target) else 0.0
        if excess > 0:
            # h = lev_factor / (1 + max(age_h, 0) / τ), age_h = (step end − open) / 1 h
            age_h, h = x_buf[:z], h_buf[:z]
            np.true_divide(np.subtract(step_end[t], book.open_ms[:z], out=age_buf[:z]), MS_PER_HOUR, out=age_h)
            np.maximum(age_h, 0.0, out=age_h)
            np.true_divide(age_h, params.age_hazard_hours, out=age_h)
            np.add(1.0, age_h, out=age_h)
            np.true_divide(lev_factor[:z], age_h, out=h)
            np.multiply(Nz, h, out=work[:z])
            pressure = float(work.sum())
            if pressure > 0:  # else nothing closes: x = 0
                x = x_buf[:z]  # x = min(1, excess · h / pressure)
                np.multiply(excess, h, out=x)
                np.true_divide(x, pressure, out=x)
                np.minimum(1.0, x, out=x)
                np.multiply(Nz, x, out=work[:z])
                closed[t] = float(work.sum())
                Nz *= np.subtract(1.0, x, out=x)
        if snapshots:
            snaps[t] = np.bincount(keys[ep][:z], weights=Nz, minlength=2 * K + 1)

    end = Book.from_columns({**book.columns(), "funding_paid": paid, "notional_usd": N})
    end, expired = compact(end, int(step_end[-1]), params)
    t_idx, col = np.nonzero(snaps[:, :2 * K] > 0)
    step_of_fresh = np.repeat(np.arange(T), np.diff(offsets))
    return FlowDay(
        step=t_idx, side=np.where(col < K, 1, -1), bin_id=uniq[col % K] if K else np.zeros(0, np.int64),
        notional_usd=snaps[t_idx, col], end_book=end,
        opened_usd=np.bincount(step_of_fresh, weights=fresh.notional_usd, minlength=T),
        closed_usd=closed, consumed_usd=consumed, consumed_per_weight=per_weight, funding_settled=settled,
        long_share_open=_per_step(p, inputs.traded_usd), expired_usd=expired, unpriced_usd=unpriced, flags=flags, signals=signals)


# ---------------------------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class Fit:
    weights: np.ndarray
    leveraged_share: float
    source: str  # "learned" or "prior"
    detail: str


def fit_side(per_weight: np.ndarray, realized_usd: np.ndarray, prior: np.ndarray, prior_share: float,
             ridge: float = FLOW.ridge) -> Fit:
    """Leverage mix and leveraged share of one side from public liquidations, with the survival model.

    `per_weight` (n, L): the book's consumed notional per unit of mix weight per bucket in n bars (the
    engine's bookkeeping, so survival by leverage and age is in it); `realized_usd` (n,): public
    liquidation notional in the same bars. Model: R ≈ Σ_l β_l·U_l with β ≥ 0 (non-negative least
    squares), ridge-pulled towards the prior shape at the data's own scale:
        min ‖Uβ − R‖² + α‖β − s·w₀‖²,  s = ΣR / Σ(U·w₀),  α = ridge · mean diag(UᵀU).
    Leveraged share = Σβ (book notional liquidated per unit consumed), mix = β / Σβ, the share capped at 1
    (no more than the whole book can be leveraged: a larger Σβ means the public liquidations exceed what the
    book consumed, as on the first days of a book still filling). Falls back to the prior (source "prior")
    when there is no realized notional or no consumption to explain it.
    """
    U = np.asarray(per_weight, dtype=np.float64)
    R = np.asarray(realized_usd, dtype=np.float64)
    w0 = np.asarray(prior, dtype=np.float64)
    if U.ndim != 2 or U.shape != (R.size, w0.size):
        raise ValueError(f"per-weight consumption {U.shape} does not match {R.size} bars × {w0.size} buckets")
    if R.sum() <= 0:
        return Fit(w0.copy(), prior_share, "prior", "no public liquidations in the window")
    base = U @ w0
    if base.sum() <= 0:
        return Fit(w0.copy(), prior_share, "prior", "the book consumed nothing in the window")
    s = R.sum() / base.sum()
    alpha = ridge * float(np.mean(np.sum(U * U, axis=0)))
    A = np.vstack([U, math.sqrt(alpha) * np.eye(w0.size)])
    b = np.concatenate([R, math.sqrt(alpha) * s * w0])
    from scipy.optimize import nnls  # here, not at the top: the definitions import this module (0.6 s of CPU)

    beta, _ = nnls(A, b, maxiter=50 * w0.size)
    total = float(beta.sum())
    if not total > 0:
        return Fit(w0.copy(), prior_share, "prior", "fit degenerate (all weights zero)")
    detail = f"{int((R > 0).sum())} bars with liquidations, ${R.sum():,.0f}"
    if total > 1.0:
        detail += (f"; fitted share {total:.3f} capped at 1: the public liquidations exceed what the book "
                   "consumed (a book still filling, or positions it does not hold)")
    return Fit(beta / total, min(total, 1.0), "learned", detail)


# ---------------------------------------------------------------------------------------------- survival
def with_time_scale(params: FlowParams, half_life_hours: float) -> FlowParams:
    """`params` with half-life H and age scale τ = H · τ₀/H₀ (one survival time scale; the prior's shape)."""
    import dataclasses

    ratio = params.age_hazard_hours / params.half_life_hours
    return dataclasses.replace(params, half_life_hours=float(half_life_hours),
                               age_hazard_hours=float(half_life_hours) * ratio)


def hourly(consumed_usd: np.ndarray, step_start_ms: np.ndarray, hours: int = 24) -> np.ndarray:
    """Per-step consumption (T, 2) summed into the day's hours (hours, 2), by each step's start hour."""
    h = ((step_start_ms - step_start_ms[0]) // MS_PER_HOUR).astype(np.int64)
    out = np.zeros((hours, 2))
    ok = (h >= 0) & (h < hours)
    np.add.at(out, h[ok], np.asarray(consumed_usd, dtype=np.float64)[ok])
    return out


def _per_step(p: np.ndarray, traded_usd: np.ndarray) -> np.ndarray:
    """A (T, E) long share as its traded-notional-weighted mean per step (T,); a (T,) one unchanged."""
    if p.ndim == 1:
        return p
    vol = traded_usd.sum(axis=1)
    return np.where(vol > 0, (p * traded_usd).sum(axis=1) / np.where(vol > 0, vol, 1.0), 0.5)
