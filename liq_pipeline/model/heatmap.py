"""Time evolution of liquidation levels over one symbol-day: levels open with OI, shrink with OI, and are
consumed when the mark price crosses them (design.md, model step 7).

Pure numpy, no I/O: the Dagster asset precomputes per-step arrays in SQL (one GROUP BY per input table)
and hands them to these functions. The only Python loop is over time steps (96 for 15 min, 1440 for
1 min), one for all the variants of a day (`evolve_many`).

State: dense notional[side, bin] over a sorted array of grid bin ids (row 0 = long, row 1 = short). The
bins are the union of the start state's bins and every bin a position opened that day can liquidate in
(the projection kernel's support), found with np.unique: no price-range guess, nothing falls off an edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.model.levels import LeverageMix, SizeBuckets, priced_cells
from liq_pipeline.model.margin import LONG, BracketTable

LONG_ROW, SHORT_ROW = 0, 1


@dataclass(frozen=True)
class LevelState:
    """Liquidation notional (USD) per side and grid bin. `bin_id` sorted ascending, `notional` (2, K)."""

    bin_id: np.ndarray
    notional: np.ndarray

    @classmethod
    def empty(cls) -> LevelState:
        return cls(np.zeros(0, dtype=np.int64), np.zeros((2, 0)))

    @classmethod
    def from_rows(cls, side: np.ndarray, bin_id: np.ndarray, notional_usd: np.ndarray) -> LevelState:
        """Build from table rows; `side` is +1/-1 or 'long'/'short'. Duplicate (side, bin) rows add up."""
        side = np.asarray(side)
        if side.dtype.kind in "UO":
            bad = ~np.isin(side, ("long", "short"))
            if bad.any():
                raise ValueError(f"side must be 'long' or 'short', got {side[bad][0]!r}")
            row = np.where(side == "long", LONG_ROW, SHORT_ROW)
        else:
            if not np.isin(side, (1, -1)).all():
                raise ValueError("side must be +1 (long) or -1 (short)")
            row = np.where(side == LONG, LONG_ROW, SHORT_ROW)
        notional_usd = np.asarray(notional_usd, dtype=np.float64)
        if np.any(~np.isfinite(notional_usd)) or np.any(notional_usd < 0):
            raise ValueError("level notional must be finite and non-negative")
        bins, inverse = np.unique(np.asarray(bin_id, dtype=np.int64), return_inverse=True)
        dense = np.zeros((2, bins.size))
        np.add.at(dense, (row, inverse.ravel()), notional_usd)
        return cls(bins, dense)

    @property
    def total_usd(self) -> float:
        return float(self.notional.sum())


def oi_at(sample_time: np.ndarray, sample_usd: np.ndarray, instants: np.ndarray) -> np.ndarray:
    """Open interest (USD) in force at each instant: the last sample at or before it, never a later one.

    `sample_time` must be sorted (datetime64 or int ms), stale samples already removed. Instants before
    the first sample get nan (unknown, not zero).
    """
    t = np.asarray(sample_time)
    if t.size and np.any(t[1:] < t[:-1]):
        raise ValueError("open-interest sample times must be sorted ascending")
    idx = np.searchsorted(t, np.asarray(instants), side="right") - 1
    out = np.full(idx.shape, np.nan)
    ok = idx >= 0
    out[ok] = np.asarray(sample_usd, dtype=np.float64)[idx[ok]]
    return out


def long_share_for_bins(
    entry_bins: np.ndarray, dist_bin: np.ndarray, dist_long_usd: np.ndarray, dist_short_usd: np.ndarray
) -> tuple[np.ndarray, str]:
    """Long share of new entry notional per entry bin, from a position distribution (the previous day's).

    share = long / (long + short) of the distribution's bin; bins the distribution does not cover (or
    covers with zero notional) take its overall long share Σlong / Σ(long+short). Without a distribution
    every bin gets 0.5, and the returned note says so ("" otherwise).
    """
    entry_bins = np.asarray(entry_bins, dtype=np.int64)
    long_usd = np.asarray(dist_long_usd, dtype=np.float64)
    short_usd = np.asarray(dist_short_usd, dtype=np.float64)
    total = long_usd + short_usd
    if long_usd.size == 0 or total.sum() <= 0:
        return np.full(entry_bins.shape, 0.5), "no position distribution for the previous day: long share 0.5"
    overall = float(long_usd.sum() / total.sum())
    order = np.argsort(dist_bin)
    sorted_bins = np.asarray(dist_bin, dtype=np.int64)[order]
    pos = np.clip(np.searchsorted(sorted_bins, entry_bins), 0, sorted_bins.size - 1)
    hit = sorted_bins[pos] == entry_bins
    tot = total[order][pos]
    share = np.where(hit & (tot > 0), long_usd[order][pos] / np.where(tot > 0, tot, 1.0), overall)
    return share, ""


@dataclass(frozen=True)
class EntryKernel:
    """Liquidation notional per unit of entry notional: row e = one USD opened at the mid of entry bin e.

    `long`/`short` are (E, Kb) over `liq_bin` (Kb sorted bin ids); each row sums to 1 minus the share
    `project_levels` could not price (beyond an incomplete bracket table).
    """

    entry_bin: np.ndarray
    liq_bin: np.ndarray
    long: np.ndarray
    short: np.ndarray


def entry_kernel(
    entry_bins: np.ndarray, grid: PriceGrid, table: BracketTable, leverage_mix: LeverageMix, sizes: SizeBuckets
) -> EntryKernel:
    """Project one USD of long and one of short entry at each entry bin's mid price (levels.priced_cells,
    the pricing of levels.project_levels).

    The projection is linear in the entry notional, so a day's additions are a matrix product of the
    per-step entry notional with this kernel. All entry bins are priced in one broadcast; the cells keep
    their entry bin, which project_levels' (side, bin) aggregation drops. Each (entry, side, bin) weight
    adds its cells in the order project_levels would for that entry alone, so the kernel is the same to
    the last bit as one project_levels call per entry bin.
    """
    entry_bins = np.unique(np.asarray(entry_bins, dtype=np.int64))
    E = entry_bins.size
    if E == 0:
        return EntryKernel(entry_bins, np.zeros(0, np.int64), np.zeros((0, 0)), np.zeros((0, 0)))
    ones = np.ones(E)
    cells = priced_cells(grid.mid(entry_bins), ones, ones, grid, table, leverage_mix, sizes)
    liq_bin, col = np.unique(cells.bin_id, return_inverse=True)
    col = col.ravel()
    # Sum the cells of each (entry, side, liquidation bin) in array order (bincount), then place them.
    key = (cells.entry * 2 + (cells.side != LONG)) * liq_bin.size + col
    uniq, inverse = np.unique(key, return_inverse=True)
    weight = np.bincount(inverse.ravel(), weights=cells.notional_usd, minlength=uniq.size)
    e_idx, rest = np.divmod(uniq, 2 * liq_bin.size)
    is_short, c = np.divmod(rest, liq_bin.size)
    k_long = np.zeros((E, liq_bin.size))
    k_short = np.zeros_like(k_long)
    k_long[e_idx[is_short == 0], c[is_short == 0]] = weight[is_short == 0]
    k_short[e_idx[is_short == 1], c[is_short == 1]] = weight[is_short == 1]
    return EntryKernel(entry_bins, liq_bin, k_long, k_short)


def opened_levels(entry_usd: np.ndarray, long_share: np.ndarray, kernel: EntryKernel) -> np.ndarray:
    """Liquidation notional opened per step: (T, 2, Kb) over `kernel.liq_bin`.

    `entry_usd` (T, E) is the new entry notional per step and entry bin (ΔOI spread by traded notional);
    long entry = entry × share, short = entry × (1 − share), so long + short = ΔOI (a contract counts once
    in OI, as in position_distribution where Σ(long+short) = OI).
    """
    entry_usd = np.asarray(entry_usd, dtype=np.float64)
    share = np.asarray(long_share, dtype=np.float64)
    if entry_usd.ndim != 2 or entry_usd.shape[1] != kernel.entry_bin.size or share.shape != (entry_usd.shape[1],):
        raise ValueError(f"entry notional {entry_usd.shape} / long share {share.shape} do not match "
                         f"{kernel.entry_bin.size} kernel entry bins")
    # Sparse product: few steps open anything (OI rose) and a kernel row has a few cells per side. Each
    # (step, bin) adds its entries' products in ascending entry order, the sum a plain loop would make,
    # the same on every machine (a BLAS product fuses and orders by its build, and on a busy machine its
    # threads cost more than this whole product).
    out = np.zeros((entry_usd.shape[0], 2, kernel.liq_bin.size))
    rows = np.flatnonzero(entry_usd.any(axis=1))
    if rows.size == 0:
        return out
    e = entry_usd[rows]
    for row, k, part in ((LONG_ROW, kernel.long, e * share), (SHORT_ROW, kernel.short, e * (1 - share))):
        ei, ki = np.nonzero(k)  # ascending entry bin
        acc = np.zeros((kernel.liq_bin.size, rows.size))
        np.add.at(acc, ki, (part[:, ei] * k[ei, ki]).T)
        out[rows, row] = acc.T
    return out


def spread_entry_notional(delta_oi_usd: np.ndarray, traded_usd: np.ndarray) -> tuple[np.ndarray, float]:
    """New entry notional per (step, entry bin): positive ΔOI spread in proportion to the step's traded
    notional per bin. Returns (T, E) and the ΔOI (USD) dropped because its step had no trades."""
    d = np.nan_to_num(np.asarray(delta_oi_usd, dtype=np.float64), nan=0.0)
    traded = np.asarray(traded_usd, dtype=np.float64)
    step_total = traded.sum(axis=1)
    rising = d > 0
    has_trades = step_total > 0
    shares = traded / np.where(has_trades, step_total, 1.0)[:, None]
    dropped = float(d[rising & ~has_trades].sum())
    return np.where(rising, d, 0.0)[:, None] * shares, dropped


@dataclass(frozen=True)
class Evolution:
    """Output of `evolve`: snapshot cells (non-zero only), the end state and per-step bookkeeping (USD)."""

    step: np.ndarray  # (R,) step index of each snapshot cell; snapshot time = step end
    side: np.ndarray  # (R,) +1 long / -1 short
    bin_id: np.ndarray  # (R,)
    notional_usd: np.ndarray  # (R,)
    end_state: LevelState
    added_usd: np.ndarray  # (T,)
    shrunk_usd: np.ndarray  # (T,) removed by OI decreases
    consumed_long_usd: np.ndarray  # (T,)
    consumed_short_usd: np.ndarray  # (T,)
    decayed_usd: np.ndarray  # (T,)


def evolve(
    start: LevelState,
    added_bins: np.ndarray,
    added: np.ndarray,
    oi_ratio: np.ndarray,
    mark_high: np.ndarray,
    mark_low: np.ndarray,
    grid: PriceGrid,
    decay_per_step: float = 1.0,
) -> Evolution:
    """Run the state through T steps; each step, in order:

    (a) add `added[t]` (2, Ka over `added_bins`), then multiply everything by `oi_ratio[t]` (OI_end/OI_start
        when OI fell, else 1: positions closed pro rata);
    (b) consume with the step's mark range: long levels with price ≥ mark_low and short levels with price
        ≤ mark_high are set to 0 (Binance liquidates on mark price; `price` = bin mid). nan high/low = no
        candle in the step, nothing consumed;
    (c) multiply by `decay_per_step` (exp(−ln2·Δt/half-life); 1 = no decay);
    (d) snapshot the non-zero cells.
    """
    added = np.asarray(added, dtype=np.float64)
    if added.ndim != 3:
        raise ValueError(f"additions have shape {added.shape}, expected (T, 2, {np.size(added_bins)})")
    return evolve_many([start], added_bins, added[None], oi_ratio, mark_high, mark_low, grid, decay_per_step)[0]


def evolve_many(
    starts: list[LevelState],
    added_bins: np.ndarray,
    added: np.ndarray,
    oi_ratio: np.ndarray,
    mark_high: np.ndarray,
    mark_low: np.ndarray,
    grid: PriceGrid,
    decay_per_step: float = 1.0,
) -> list[Evolution]:
    """`evolve` for V variants that share the day's mark path and OI ratios and differ in their start
    state and additions (`added` (V, T, 2, Ka)): one loop over the steps moves all of them.

    Every cell gets the same operations as in a run of its own, so the snapshots and end states are those
    of V `evolve` calls bit for bit; the bookkeeping sums run over the variants' common bins and may differ
    from a lone run's in the last bit.
    """
    added = np.asarray(added, dtype=np.float64)
    if added.ndim != 4 or added.shape[0] != len(starts):
        raise ValueError(f"additions have shape {added.shape}, expected ({len(starts)}, T, 2, {np.size(added_bins)})")
    V, T = added.shape[:2]
    for name, arr in (("oi_ratio", oi_ratio), ("mark_high", mark_high), ("mark_low", mark_low)):
        if np.shape(arr) != (T,):
            raise ValueError(f"{name} has shape {np.shape(arr)}, expected ({T},) like the additions")
    if added.shape[2:] != (2, np.size(added_bins)):
        raise ValueError(f"additions have shape {added.shape[1:]}, expected (T, 2, {np.size(added_bins)})")
    ratio = np.asarray(oi_ratio, dtype=np.float64)
    if np.any(~np.isfinite(ratio)) or np.any(ratio < 0) or np.any(ratio > 1):
        raise ValueError("oi_ratio must be in [0, 1] (only OI decreases shrink the levels)")
    if not 0 < decay_per_step <= 1:
        raise ValueError(f"decay_per_step must be in (0, 1], got {decay_per_step}")

    added_bins = np.asarray(added_bins, dtype=np.int64)
    own_bins = [np.union1d(s.bin_id, added_bins) for s in starts]
    bins = np.unique(np.concatenate([added_bins, *own_bins]))
    state = np.zeros((V, 2, bins.size))
    for v, s in enumerate(starts):
        state[v][:, np.searchsorted(bins, s.bin_id)] = s.notional
    add_cols = np.searchsorted(bins, added_bins)
    price = grid.mid(bins)  # ascending with bin id on both grid modes
    # Index of the first long bin at/above the low and one past the last short bin at/below the high.
    low = np.asarray(mark_low, dtype=np.float64)
    high = np.asarray(mark_high, dtype=np.float64)
    long_from = np.where(np.isnan(low), bins.size, np.searchsorted(price, np.nan_to_num(low, nan=np.inf), "left"))
    short_to = np.where(np.isnan(high), 0, np.searchsorted(price, np.nan_to_num(high, nan=-np.inf), "right"))

    snaps = np.empty((V, T, 2, bins.size))
    shrunk = np.zeros((V, T))
    consumed = np.zeros((V, T, 2))
    decayed = np.zeros((V, T))
    for t in range(T):
        state[:, :, add_cols] += added[:, t]
        if ratio[t] < 1:
            shrunk[:, t] = state.sum(axis=(1, 2)) * (1 - ratio[t])
            state *= ratio[t]
        consumed[:, t, 0] = state[:, LONG_ROW, long_from[t]:].sum(axis=1)
        consumed[:, t, 1] = state[:, SHORT_ROW, :short_to[t]].sum(axis=1)
        state[:, LONG_ROW, long_from[t]:] = 0.0
        state[:, SHORT_ROW, :short_to[t]] = 0.0
        if decay_per_step < 1:
            decayed[:, t] = state.sum(axis=(1, 2)) * (1 - decay_per_step)
            state *= decay_per_step
        snaps[:, t] = state

    out = []
    for v in range(V):
        t_idx, row, col = np.nonzero(snaps[v] > 0)
        own = np.searchsorted(bins, own_bins[v])
        out.append(Evolution(
            step=t_idx,
            side=np.where(row == LONG_ROW, 1, -1),
            bin_id=bins[col],
            notional_usd=snaps[v][t_idx, row, col],
            end_state=LevelState(own_bins[v], state[v][:, own].copy()),
            added_usd=added[v].sum(axis=(1, 2)),
            shrunk_usd=shrunk[v],
            consumed_long_usd=consumed[v, :, 0],
            consumed_short_usd=consumed[v, :, 1],
            decayed_usd=decayed[v],
        ))
    return out


def decay_per_step(step_minutes: float, half_life_hours: float | None) -> float:
    """exp(−ln2·Δt/half_life) for one step; 1.0 when decay is off (half_life None)."""
    if half_life_hours is None:
        return 1.0
    if not half_life_hours > 0:
        raise ValueError(f"heatmap half-life must be positive hours or None, got {half_life_hours!r}")
    return math.exp(-math.log(2) * (step_minutes / 60.0) / half_life_hours)


def oi_shrink_ratio(oi_start_usd: np.ndarray, oi_end_usd: np.ndarray) -> np.ndarray:
    """OI_end/OI_start where OI fell (both known and positive), else 1."""
    a = np.asarray(oi_start_usd, dtype=np.float64)
    b = np.asarray(oi_end_usd, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b < a)
    return np.where(ok, np.clip(b / np.where(ok, a, 1.0), 0.0, 1.0), 1.0)


def steps_per_day(step_minutes: int) -> int:
    if not isinstance(step_minutes, int) or step_minutes <= 0 or 1440 % step_minutes:
        raise ValueError(f"heatmap step must be a whole number of minutes dividing a day (1, 5, 15, 60 ...), "
                         f"got {step_minutes!r}")
    return 1440 // step_minutes
