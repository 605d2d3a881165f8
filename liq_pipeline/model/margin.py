"""Binance USD-M liquidation prices with dated maintenance-margin brackets (liquidation-math.md §2-§5).

Everything is vectorised over numpy arrays of float64, which is exact to far better than 1e-6 USD at
crypto prices. Sides are +1 for long and -1 for short.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

LONG, SHORT = 1, -1


class BracketError(ValueError):
    """No usable bracket table (unknown symbol, malformed table)."""


@dataclass(frozen=True)
class BracketTable:
    """One dated tier table of one symbol. Arrays are ordered by tier (bracket 1 first)."""

    id: str
    symbol: str
    as_of: dt.date | None
    complete: bool
    bracket: np.ndarray
    notional_floor: np.ndarray
    notional_cap: np.ndarray  # +inf for an open-ended last tier of a complete table
    max_leverage: np.ndarray  # nan where unknown
    mmr: np.ndarray
    cum: np.ndarray
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, table: dict) -> BracketTable:
        tiers = sorted(table["tiers"], key=lambda t: t["bracket"])
        if not tiers:
            raise BracketError(f"bracket table {table.get('id')!r} has no tiers")
        as_of = table.get("as_of")
        complete = bool(table.get("complete", False))
        caps = [t["notional_cap"] for t in tiers]
        if caps[-1] is None and not complete:
            raise BracketError(f"{table['id']}: an incomplete table needs a known cap on its last tier")
        return cls(
            id=table["id"],
            symbol=table["symbol"],
            as_of=dt.date.fromisoformat(as_of) if as_of else None,
            complete=complete,
            bracket=np.array([t["bracket"] for t in tiers], dtype=np.int64),
            notional_floor=np.array([float(t["notional_floor"]) for t in tiers]),
            notional_cap=np.array([np.inf if c is None else float(c) for c in caps]),
            max_leverage=np.array([np.nan if t.get("max_leverage") is None else float(t["max_leverage"]) for t in tiers]),
            mmr=np.array([float(t["maint_margin_ratio"]) for t in tiers]),
            cum=np.array([float(t["cum"]) for t in tiers]),
            source=table.get("source", ""),
        )

    def continuity_errors(self) -> list[str]:
        """Violations of the cum continuity rule and cap_k = floor_(k+1) (liquidation-math.md §5)."""
        errors = []
        if self.cum[0] != 0:
            errors.append(f"{self.id}: cum of tier 1 is {self.cum[0]}, expected 0")
        for k in range(1, len(self.mmr)):
            expected = self.cum[k - 1] + self.notional_floor[k] * (self.mmr[k] - self.mmr[k - 1])
            if abs(expected - self.cum[k]) > 1e-6:
                errors.append(f"{self.id}: tier {k + 1} cum {self.cum[k]} != {expected}")
            if self.notional_cap[k - 1] != self.notional_floor[k]:
                errors.append(f"{self.id}: tier {k} cap != tier {k + 1} floor")
            if not self.mmr[k] > self.mmr[k - 1]:
                errors.append(f"{self.id}: MMR does not rise at tier {k + 1}")
        return errors


def _reference_tables() -> list[dict]:
    text = resources.files("liq_pipeline").joinpath("reference/brackets.json").read_text()
    return json.loads(text)["tables"]


def load_bracket_tables(extra_dir: Path | None = None) -> list[BracketTable]:
    """The shipped dated tables plus any snapshots stored under `extra_dir` (one JSON table per file,
    as written by the bracket-refresh asset from the signed leverageBracket endpoint)."""
    raw = _reference_tables()
    if extra_dir is not None and Path(extra_dir).is_dir():
        for path in sorted(Path(extra_dir).glob("*.json")):
            raw.append(json.loads(path.read_text()))
    return [BracketTable.from_dict(t) for t in raw]


@dataclass(frozen=True)
class TableChoice:
    table: BracketTable
    note: str  # "" when a dated table in force on the day was found


def table_for(symbol: str, day: dt.date, tables: list[BracketTable] | None = None) -> TableChoice:
    """The table in force for `symbol` on `day`: the newest with as_of <= day (brackets.json notes).

    Before every as_of the oldest table is used; an undated table is used for every date; both are
    reported in `note` so the asset metadata can say so.
    """
    tables = load_bracket_tables() if tables is None else tables
    mine = [t for t in tables if t.symbol == symbol]
    if not mine:
        known = sorted({t.symbol for t in tables})
        raise BracketError(
            f"no maintenance-margin bracket table for {symbol!r} (known: {', '.join(known)}); "
            "add one to liq_pipeline/reference/brackets.json or refresh with BINANCE_API_KEY/BINANCE_API_SECRET"
        )
    dated = sorted((t for t in mine if t.as_of is not None), key=lambda t: t.as_of)
    in_force = [t for t in dated if t.as_of <= day]
    if in_force:
        return TableChoice(in_force[-1], "")
    if dated:
        return TableChoice(dated[0], f"{day} precedes every dated {symbol} table; used the oldest, {dated[0].id}")
    return TableChoice(mine[0], f"{symbol} has only the undated table {mine[0].id}; used for every date")


def liquidation_price(
    side: np.ndarray | int,
    quantity: np.ndarray | float,
    entry_price: np.ndarray | float,
    wallet_balance: np.ndarray | float,
    mmr: np.ndarray | float,
    cum: np.ndarray | float,
    tmm_other: np.ndarray | float = 0.0,
    upnl_other: np.ndarray | float = 0.0,
) -> np.ndarray:
    """One-way mode liquidation price for a given tier (Binance FAQ, liquidation-math.md §2-§3), USDT.

    LP = (WB - TMM_other + UPNL_other + cum - s*Q*EP) / (Q*MMR - s*Q)

    Isolated margin: TMM_other = UPNL_other = 0 and WB is the position's isolated balance. Cross margin
    with other positions: WB is the cross wallet balance.
    """
    s = np.asarray(side, dtype=np.float64)
    q = np.asarray(quantity, dtype=np.float64)
    numerator = np.asarray(wallet_balance) - tmm_other + upnl_other + np.asarray(cum) - s * q * entry_price
    return numerator / (q * np.asarray(mmr) - s * q)


@dataclass(frozen=True)
class TieredPrices:
    """Result of tier selection: price (nan where there is none), the bracket used and flags."""

    price: np.ndarray
    bracket: np.ndarray  # 0 where no tier applies
    beyond_table: np.ndarray  # notional past the last tier of an incomplete table: not priced
    no_liquidation: np.ndarray  # long whose formula gives LP <= 0 (Binance shows "--")


def tiered_liquidation_price(
    side: np.ndarray | int,
    quantity: np.ndarray | float,
    entry_price: np.ndarray | float,
    wallet_balance: np.ndarray | float,
    table: BracketTable,
    tmm_other: np.ndarray | float = 0.0,
    upnl_other: np.ndarray | float = 0.0,
) -> TieredPrices:
    """Liquidation price with the tier re-checked at the liquidation price (liquidation-math.md §4).

    For every tier k computes LP_k and keeps the tier whose [floor_k, cap_k) contains Q*LP_k; with the
    continuous cum of the tables exactly one tier qualifies when LP > 0.
    """
    side, quantity, entry_price, wallet_balance = np.broadcast_arrays(
        np.asarray(side, dtype=np.float64),
        np.asarray(quantity, dtype=np.float64),
        np.asarray(entry_price, dtype=np.float64),
        np.asarray(wallet_balance, dtype=np.float64),
    )
    lp_k = liquidation_price(
        side[..., None], quantity[..., None], entry_price[..., None], wallet_balance[..., None],
        table.mmr, table.cum, np.asarray(tmm_other)[..., None], np.asarray(upnl_other)[..., None],
    )
    notional_k = quantity[..., None] * lp_k
    ok = (lp_k > 0) & (notional_k >= table.notional_floor) & (notional_k < table.notional_cap)
    found = ok.any(axis=-1)
    k = np.argmax(ok, axis=-1)
    price = np.where(found, np.take_along_axis(lp_k, k[..., None], axis=-1)[..., 0], np.nan)
    bracket = np.where(found, table.bracket[k], 0)
    top = len(table.mmr) - 1
    beyond = ~found & (notional_k[..., top] >= table.notional_cap[top]) & (lp_k[..., top] > 0)
    return TieredPrices(price=price, bracket=bracket, beyond_table=beyond, no_liquidation=~found & ~beyond)


def isolated_liquidation_price_at_leverage(
    side: np.ndarray | int, notional_usd: np.ndarray | float, entry_price: np.ndarray | float,
    leverage: np.ndarray | float, table: BracketTable,
) -> TieredPrices:
    """A freshly opened isolated position of `notional_usd` at `leverage`: WB = N/L, Q = N/EP."""
    notional = np.asarray(notional_usd, dtype=np.float64)
    entry = np.asarray(entry_price, dtype=np.float64)
    return tiered_liquidation_price(side, notional / entry, entry, notional / np.asarray(leverage), table)


def isolated_liquidation_price_over_leverages(
    side: np.ndarray, notional_usd: np.ndarray, entry_price: np.ndarray, leverage: np.ndarray, table: BracketTable,
) -> np.ndarray:
    """`isolated_liquidation_price_at_leverage(...).price` for positions (P,) × leverages (P, J), the same
    numbers (nan where there is none) at 1/K of the work for a K-tier table: the tier is found without pricing
    every tier. For one position the liquidation notional N·LP/EP is affine in x = 1/L within a tier and,
    with the continuous cum, continuous across tiers, so each tier floor F_k corresponds to one margin
    fraction x_k = F_k/N·(MMR_k − s) + s − cum_k/N: a long's liquidation notional falls as x rises (tier =
    #{k ≥ 1: x ≤ x_k}), a short's rises (tier = #{k ≥ 1: x ≥ x_k}). That tier alone is priced with
    `liquidation_price` (the same arithmetic, hence the same bits) and checked as tiered_liquidation_price
    checks every tier; the rare points the check rejects (ties at a floor, LP ≤ 0, beyond the table) are
    priced the full way."""
    s = np.asarray(side, dtype=np.float64)[:, None]
    notional = np.asarray(notional_usd, dtype=np.float64)[:, None]
    entry = np.asarray(entry_price, dtype=np.float64)[:, None]
    leverage = np.asarray(leverage, dtype=np.float64)
    wallet = notional / leverage
    signed_x = np.where(s > 0, -1.0, 1.0) / leverage  # a long's tier rises as −x rises, a short's as x does
    tier = np.zeros(wallet.shape, dtype=np.int64)
    for k in range(1, len(table.mmr)):
        # Only positions whose liquidation notional could reach floor k (it stays below 3N + cum_k: a long's
        # below N, a short's below (2N + cum)/(1 + MMR) at 1×); a wrong skip would fail the check below.
        rows = np.nonzero(3.0 * notional[:, 0] + table.cum[k] >= table.notional_floor[k])[0]
        if rows.size:
            n, sr = notional[rows], s[rows]
            x_k = table.notional_floor[k] / n * (table.mmr[k] - sr) + sr - table.cum[k] / n
            tier[rows] += signed_x[rows] >= np.where(sr > 0, -x_k, x_k)
    quantity = notional / entry
    price = liquidation_price(s, quantity, entry, wallet, table.mmr[tier], table.cum[tier], 0.0, 0.0)
    liq_notional = quantity * price
    ok = (price > 0) & (liq_notional >= table.notional_floor[tier]) & (liq_notional < table.notional_cap[tier])
    if not ok.all():
        rows, cols = np.nonzero(~ok)
        price[rows, cols] = tiered_liquidation_price(s[rows, 0], quantity[rows, 0], entry[rows, 0], wallet[rows, cols],
                                                     table).price
    return price


def max_leverage_at(notional_usd: np.ndarray | float, table: BracketTable) -> np.ndarray:
    """Highest leverage allowed for an entry notional (tier containing it); nan where unknown."""
    notional = np.asarray(notional_usd, dtype=np.float64)
    k = np.clip(np.searchsorted(table.notional_floor, notional, side="right") - 1, 0, len(table.mmr) - 1)
    return table.max_leverage[k]


def simplified_liquidation_price(side: np.ndarray | int, entry_price: np.ndarray | float,
                                 leverage: np.ndarray | float, mmr: float = 0.004) -> np.ndarray:
    """The approximation most tools use, EP*(1 - s/L + s*MMR), cum ignored (liquidation-math.md §6).
    Kept only as a comparison oracle for the validation suite."""
    s = np.asarray(side, dtype=np.float64)
    return np.asarray(entry_price) * (1 - s / np.asarray(leverage) + s * mmr)
