"""The shapes a day's liquidation map is shown in: per-side notional per grid bin (`LevelState`), the
snapshots of a day with their bookkeeping (`Evolution`), and the step arithmetic of a day (`steps_per_day`,
`oi_at`). The map itself comes from the one book engine (model/flow.py): pipeline/heatmap_day.py reads its
snapshots into these shapes for the pictures, the zones and the `liq` answers.

State: dense notional[side, bin] over a sorted array of grid bin ids (row 0 = long, row 1 = short).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liq_pipeline.model.margin import LONG

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


def steps_per_day(step_minutes: int) -> int:
    if not isinstance(step_minutes, int) or step_minutes <= 0 or 1440 % step_minutes:
        raise ValueError(f"heatmap step must be a whole number of minutes dividing a day (1, 5, 15, 60 ...), "
                         f"got {step_minutes!r}")
    return 1440 // step_minutes
