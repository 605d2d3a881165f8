"""The book of open speculative positions (parallel numpy columns, compacted when positions leave), the
column chunks the simulator appends its records to, and the trigger bands the exit scan looks at."""

from __future__ import annotations

import numpy as np

_NEVER = np.iinfo(np.int64).max  # planned exit of a removed row
# Book of open speculative positions: parallel numpy arrays, compacted when positions leave.
# ---------------------------------------------------------------------------------------------------
BOOK_FIELDS = {
    "pid": np.int64, "side": np.int64, "lots": np.int64, "entry": np.float64, "liq": np.float64,
    "bracket": np.int64, "sl": np.float64, "tp": np.float64, "lo_trig": np.float64, "hi_trig": np.float64,
    "planned_ms": np.int64,
    # Wallet balance backing the position (isolated margin, or the account's balance in cross margin),
    # free collateral outside it (0 in cross), cumulative funding paid, margin-top-up trigger (nan: none).
    "margin": np.float64, "free": np.float64, "cross": np.bool_, "funding": np.float64, "add_trig": np.float64,
    "add_frac": np.float64, "lev": np.float64,
}


class Book:
    """Capacity-doubling columns with lazy removal: a removed row gets `alive` False and NaN triggers (so
    no check ever fires on it) and the arrays are compacted once a quarter of the rows are dead."""

    def __init__(self) -> None:
        self.n = 0  # rows in use (alive or dead)
        self.dead = 0
        self.cap = 1024
        self.cols = {name: np.empty(self.cap, dtype=t) for name, t in BOOK_FIELDS.items()}
        self.cols["alive"] = np.zeros(self.cap, dtype=bool)
        self._view()

    def _view(self) -> None:
        self.a = {name: col[: self.n] for name, col in self.cols.items()}

    @property
    def size(self) -> int:
        return self.n - self.dead

    def add(self, **cols: np.ndarray) -> None:
        k = len(cols["pid"])
        if self.n + k > self.cap:
            self.cap = max(2 * self.cap, self.n + k)
            for name, col in self.cols.items():
                grown = np.zeros(self.cap, dtype=col.dtype)
                grown[: self.n] = col[: self.n]
                self.cols[name] = grown
        for name in BOOK_FIELDS:
            self.cols[name][self.n:self.n + k] = cols[name]
        self.cols["alive"][self.n:self.n + k] = True
        self.n += k
        self._view()

    def remove(self, idx: np.ndarray) -> bool:
        """Mark rows `idx` dead; True when the arrays were compacted (row numbers changed)."""
        a = self.a
        a["alive"][idx] = False
        for name in ("lo_trig", "hi_trig", "liq", "sl", "tp", "add_trig"):
            a[name][idx] = np.nan
        a["planned_ms"][idx] = _NEVER
        a["lots"][idx] = 0
        self.dead += idx.size
        if self.dead * 4 > self.n:
            keep = a["alive"].copy()  # a view of the column being compacted
            m = int(keep.sum())
            for col in self.cols.values():
                col[:m] = col[: self.n][keep]
            self.n, self.dead = m, 0
            self._view()
            return True
        return False


class Chunks:
    """Column chunks appended per minute or day, concatenated once."""

    def __init__(self, *names: str) -> None:
        self.parts: dict[str, list[np.ndarray]] = {n: [] for n in names}

    def add(self, **cols: np.ndarray) -> None:
        for name, values in cols.items():
            self.parts[name].append(np.asarray(values))

    def take(self) -> dict[str, np.ndarray]:
        out = {n: (np.concatenate(v) if v else np.empty(0)) for n, v in self.parts.items()}
        for v in self.parts.values():
            v.clear()
        return out


def triggers(side: np.ndarray, liq: np.ndarray, sl: np.ndarray, tp: np.ndarray,
              add: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest trigger below and above entry: for a long (liq, stop, top-up) below and the take-profit
    above; for a short the mirror. NaN levels are ignored (fmax/fmin)."""
    lo = np.where(side > 0, np.fmax(np.fmax(liq, sl), add), tp)
    hi = np.where(side > 0, tp, np.fmin(np.fmin(liq, sl), add))
    return lo, hi
