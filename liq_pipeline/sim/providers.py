"""Liquidity providers: market makers (the counterparty of every speculative fill, sharing inventory) and
basis traders (short perp against spot, their target growing with funding)."""

from __future__ import annotations

import numpy as np

from liq_pipeline.sim.book import Chunks
from liq_pipeline.sim.config import K_PROVIDER, MS_PER_MINUTE


class Providers:
    """Part of `market.SymbolSim`: provider fills and rebalancing."""

    def _fill_providers(self, side: np.ndarray, lots: np.ndarray, price: np.ndarray) -> None:
        """Queue speculative fills (side = the speculator's change of position: +1 bought, −1 sold); they
        are applied against the market makers once per minute (`_apply_fills`)."""
        if side.size:
            self.pending_fills.append((side, lots, price))

    def _apply_fills(self) -> None:
        """The minute's speculative fills against market makers drawn by weight: each maker's inventory
        moves by the opposite, its entry by the fills' average price."""
        if not self.pending_fills:
            return
        side, lots, price = (np.concatenate(x) for x in zip(*self.pending_fills, strict=True))
        self.pending_fills.clear()
        mm = np.minimum(np.searchsorted(self.mm_cum, self.rng.random(side.size) * self.mm_cum[-1], side="right"),
                        self.n_mm - 1)
        k = self.prov_inv.size
        delta = np.rint(np.bincount(mm, -side * lots, k)).astype(np.int64)
        qty = np.bincount(mm, lots, k)
        value = np.bincount(mm, lots * price, k)
        self._provider_trade(delta, np.where(qty > 0, value / np.maximum(qty, 1), self.mark))

    def _provider_trade(self, delta: np.ndarray, price: np.ndarray) -> None:
        """Apply signed lot changes to provider inventories; average entry updated when a position grows,
        reset when it flips (one-way mode)."""
        inv = self.prov_inv
        new = inv + delta
        grow = (np.sign(new) == np.sign(inv)) & (np.abs(new) > np.abs(inv)) & (inv != 0)
        flip = (np.sign(new) != np.sign(inv)) & (new != 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = (np.abs(inv) * self.prov_entry + np.abs(delta) * price) / np.abs(new)
        self.prov_entry = np.where(grow, avg, np.where(flip, price, self.prov_entry))
        self.prov_inv = new

    def _providers_rebalance(self, t0: int, m: int, pre: dict, ev: Chunks) -> None:
        """Inventory management: basis traders move towards a short target that grows with funding, against
        a market maker; the two market makers with the most different inventories share a third of the
        difference. Each is one aggTrade, the taker side drawn at random (these flows carry no signal)."""
        cfg, rng = self.cfg, self.rng
        trades: list[tuple[int, int, int]] = []  # (buyer, seller, lots)
        k_b = cfg.basis_traders
        if k_b:
            due = np.flatnonzero(pre["basis_u"][m, :k_b] < 1.0 / cfg.basis_rebalance_minutes)
            if due.size:
                scale = np.clip(1 + cfg.basis_funding_sensitivity * (self.last_funding - cfg.interest_rate), 0, 2)
                # A fixed capital allocation (not the speculators' book): the carry trade sizes by capital.
                gross = cfg.expected_speculative_gross_usd() / self.mark * self.qty_scale
                target = -cfg.basis_share * gross * scale * self.basis_w[due]
                gap = np.round((target - self.prov_inv[self.n_mm + due]) / 2).astype(np.int64)
                min_lots = 1_000.0 / self.mark * self.qty_scale
                for j, g in zip(due, gap, strict=True):
                    if abs(g) >= min_lots:
                        mm = min(int(np.searchsorted(self.mm_cum, rng.random() * self.mm_cum[-1], side="right")),
                                 self.n_mm - 1)
                        b = self.n_mm + int(j)
                        trades.append((b, mm, int(g)) if g > 0 else (mm, b, int(-g)))
        if pre["mm_u"][m] < cfg.mm_rebalance_prob:
            share = self.prov_inv[:self.n_mm] / self.mm_w  # inventory per unit of weight
            hi, lo = int(np.argmax(share)), int(np.argmin(share))
            q = int(round((self.prov_inv[hi] - self.prov_inv[lo]) / 3))
            if hi != lo and q > 0:
                trades.append((lo, hi, q))
        if not trades:
            return
        delta = np.zeros(self.prov_inv.size, dtype=np.int64)
        buyer, seller, lots = (np.array(x, dtype=np.int64) for x in zip(*trades, strict=True))
        np.add.at(delta, buyer, lots)
        np.add.at(delta, seller, -lots)
        n = lots.size
        taker_buy = rng.random(n) < 0.5
        price = np.round((self.mark + np.where(taker_buy, 1, -1) * self.tick) * self.price_scale) / self.price_scale
        self._provider_trade(delta, np.full(delta.size, self.mark))
        times = t0 + np.sort(rng.integers(0, MS_PER_MINUTE, n))
        ev.add(time=times, price=price, lots=lots, taker_buy=taker_buy, kind=np.full(n, K_PROVIDER))
