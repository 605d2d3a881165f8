"""Speculators: the liquidatable population. Opening positions (leverage, margin mode, stops, take-profits,
planned holds), the per-minute exit scan (liquidation, stop, take-profit, planned close), margin top-ups."""

from __future__ import annotations

import datetime as dt

import numpy as np

from liq_pipeline.model import margin
from liq_pipeline.sim.book import Chunks, triggers
from liq_pipeline.sim.config import (
    CLOSED,
    EPOCH,
    K_CLOSE,
    K_LIQ,
    K_OPEN,
    LIQUIDATED,
    MS_PER_MINUTE,
    NEAR_BAND,
    NEAR_MINUTES,
)


class Speculators:
    """Part of `market.SymbolSim`: opens, exits and top-ups of speculative positions."""

    def _exits(self, t0: int, path: np.ndarray, day: dt.date, table: margin.BracketTable, ev: Chunks) -> None:
        """Close or liquidate every position whose first event falls in this minute; then top up the margin
        of isolated traders whose alert level was touched (they react after the minute, so a liquidation
        earlier in the same minute wins)."""
        a = self.book.a
        pmin, pmax = path.min(), path.max()
        t_end = t0 + MS_PER_MINUTE
        if self.near is None or pmin < self.near_lo or pmax > self.near_hi or t_end > self.near_until:
            # Rows that could fire soon: a trigger within NEAR_BAND of the mark or an exit planned within
            # NEAR_MINUTES. The others cannot fire while the mark stays within half the band: exact.
            ref = self.mark
            self.near = np.flatnonzero((a["lo_trig"] >= ref * (1 - NEAR_BAND)) | (a["hi_trig"] <= ref * (1 + NEAR_BAND))
                                       | (a["planned_ms"] < t0 + NEAR_MINUTES * MS_PER_MINUTE))
            self.near_lo, self.near_hi = ref * (1 - NEAR_BAND / 2), ref * (1 + NEAR_BAND / 2)
            self.near_until = t0 + NEAR_MINUTES * MS_PER_MINUTE
            if pmin < self.near_lo or pmax > self.near_hi:  # a move beyond half the band within this minute
                self.near = np.flatnonzero(a["alive"])
        near = self.near
        cand = near[(a["lo_trig"][near] >= pmin) | (a["hi_trig"][near] <= pmax) | (a["planned_ms"][near] < t_end)]
        if cand.size:
            self._check(cand, path, t0, None, day, table, ev)

    def _check(self, idx: np.ndarray, path: np.ndarray, t0: int, start: np.ndarray | None, day: dt.date,
               table: margin.BracketTable, ev: Chunks) -> None:
        """First event of book rows `idx` on the mark samples `path` (one a second from `t0`), each row from
        its sample `start` on (None: all from 0). Liquidation wins ties (the engine acts on the same sample)."""
        a = self.book.a
        w = path.size
        side = a["side"][idx][:, None]
        # Signed prices: a long's `p <= level` is a short's `p >= level`, i.e. side·p <= side·level for both
        # (side is ±1, so the products are exact and NaN levels still compare False: no trigger).
        sp = side * path[None, :]
        valid = None if start is None else np.arange(w)[None, :] >= start[:, None]
        rows = np.arange(idx.size)

        def first(hit: np.ndarray) -> np.ndarray:
            if valid is not None:
                hit &= valid
            j = hit.argmax(axis=1)
            return np.where(hit[rows, j], j, w)

        s_liq = first(sp <= side * a["liq"][idx][:, None])
        s_sl = first(sp <= side * a["sl"][idx][:, None])
        s_tp = first(sp >= side * a["tp"][idx][:, None])
        s_add = first(sp <= side * a["add_trig"][idx][:, None])
        planned = a["planned_ms"][idx]
        lo = 0 if start is None else start
        s_due = np.where(planned < t0 + w * 1000, np.minimum(np.maximum((planned - t0) // 1000, lo), w - 1), w)
        s = np.minimum(np.minimum(s_liq, s_sl), np.minimum(s_tp, s_due))
        fired = s < w
        top_up = idx[~fired & (s_add < w)]
        if top_up.size:  # before the closes: they compact the book and shift the indices
            self._top_up(top_up, t0 + w * 1000 - 1, table)
        if fired.any():
            self._close(idx[fired], s[fired], s_liq[fired], s_due[fired], planned[fired], t0, path, day, ev)

    def _close(self, idx: np.ndarray, s: np.ndarray, s_liq: np.ndarray, s_due: np.ndarray,
               planned: np.ndarray, t0: int, path: np.ndarray, day: dt.date, ev: Chunks) -> None:
        a = self.book.a
        side = a["side"][idx]
        liquidated = s_liq == s  # a liquidation wins ties: the engine acts on the same mark sample
        by_plan = ~liquidated & (s_due == s)
        rng = self.rng
        jitter = rng.integers(0, 1000, idx.size)
        close_ms = np.where(liquidated, t0 + s * 1000 + 1 + jitter % 300,
                            np.where(by_plan, np.maximum(planned, t0), t0 + s * 1000 + jitter))
        mark_at = path[s]
        lots = a["lots"][idx]
        # Exit fills: liquidation orders sweep a little past mark; other exits cross the spread.
        slip = np.where(liquidated, rng.random(idx.size) * 8e-4, 0.0)
        fill = np.round((mark_at * (1 - side * slip) - side * self.tick * ~liquidated) * self.price_scale) / self.price_scale
        taker = liquidated | (rng.random(idx.size) < self.cfg.taker_close_share)
        # A closing long sells: as taker it sells (taker_buy False); as maker the counterparty buys.
        taker_buy = np.where(taker, side < 0, side > 0)
        ev.add(time=close_ms, price=fill, lots=lots, taker_buy=taker_buy,
               kind=np.where(liquidated, K_LIQ, K_CLOSE))
        self._fill_providers(-side, lots, fill)
        self.ended.add(pid=a["pid"][idx], close_ms=close_ms, outcome=np.where(liquidated, LIQUIDATED, CLOSED))
        if liquidated.any():
            li = idx[liquidated]
            ls = side[liquidated]
            qty = lots[liquidated] / self.qty_scale
            entry = a["entry"][li]
            # Bankruptcy price (order price of the forced order): margin balance exactly zero, with the
            # margin in force (after funding and top-ups).
            order_price = np.round((entry - ls * a["margin"][li] / qty) * self.price_scale) / self.price_scale
            order_price = np.maximum(order_price, self.tick)
            self.liqs.add(pid=a["pid"][li], day=np.full(li.size, (day - EPOCH).days), time_ms=close_ms[liquidated],
                          side=ls, liq=a["liq"][li], lots=lots[liquidated], avg_price=fill[liquidated],
                          order_price=order_price)
            notional = qty * a["liq"][li]
            self.n_liquidations += li.size
            self.liq_notional += float(notional.sum())
            oi_lots = self.spec_long + int(np.maximum(self.prov_inv, 0).sum())
            open_notional = max(oi_lots / self.qty_scale * self.mark, 1.0)
            impact = -self.cfg.liquidation_impact * float((ls * notional).sum()) / open_notional
            cap = self.cfg.max_impact_per_minute
            self.pending_impact = float(np.clip(self.pending_impact + impact, -cap, cap))
        self.spec_long -= int(lots[side > 0].sum())
        self.spec_short -= int(lots[side < 0].sum())
        if self.book.remove(idx):
            self.near = None  # rows renumbered

    def _top_up(self, idx: np.ndarray, time_ms: int, table: margin.BracketTable) -> None:
        """Move `add_frac` of the margin (at most the free collateral) into the isolated margin."""
        a = self.book.a
        amount = np.minimum(a["add_frac"][idx] * a["margin"][idx], a["free"][idx])
        a["margin"][idx] += amount
        a["free"][idx] -= amount
        a["add_trig"][idx] = np.nan  # one top-up per position
        self._reprice(idx, table)
        self.changes.add(pid=a["pid"][idx], time_ms=np.full(idx.size, time_ms),
                         margin=a["margin"][idx], liq=a["liq"][idx], bracket=a["bracket"][idx])

    def _opens(self, day_ms: int, path_day: np.ndarray, b0: int, m_end: int, day: dt.date,
               table: margin.BracketTable, pre: dict[str, np.ndarray], off: int, n: int, ev: Chunks) -> None:
        """Open the `n` speculative positions drawn for minutes b0..m_end at their own times and marks, then
        catch up their exits from the minute after each open to the block end."""
        cfg = self.cfg
        sl_ = slice(off, off + n)
        minute = pre["o_minute"][sl_]
        offset = pre["o_offset"][sl_]
        p_long = np.clip(np.asarray(cfg.regime_long_probs)[pre["regime"][minute]]
                         - cfg.funding_sensitivity * (self.last_funding - cfg.interest_rate), 0.05, 0.95)
        side = np.where(pre["o_side_u"][sl_] < p_long, 1, -1)
        notional = pre["o_notional"][sl_]
        # Leverage cannot exceed the max leverage of the tier holding the entry notional; tables without
        # it (ETH fixture) use 1/(2·MMR), which reproduces BTC's published 150/100/75/50 within rounding.
        tier = np.clip(np.searchsorted(table.notional_floor, notional, side="right") - 1, 0, len(table.mmr) - 1)
        max_lev = np.where(np.isnan(table.max_leverage[tier]), np.floor(0.5 / table.mmr[tier]), table.max_leverage[tier])
        scalp = pre["o_scalp"][sl_]
        # Scalpers keep the leverage they drew (their sizes are small by construction); the others scale it down
        # with size.
        lev = np.where(scalp, pre["o_lev"][sl_], np.maximum(
            2.0, np.floor(pre["o_lev"][sl_] * (notional / cfg.size_min_usd) ** -cfg.leverage_size_exponent)))
        lev = np.minimum(lev, max_lev)
        mark_at = path_day[minute * 60 + offset // 1000]
        taker = pre["o_taker_u"][sl_] < cfg.taker_open_share
        # A taker crosses the spread (a long buys one tick above mark); a maker rests one tick inside.
        entry = np.round((mark_at + np.where(taker, side, -side) * self.tick) * self.price_scale) / self.price_scale
        lots = np.maximum(1, np.round(notional / entry * self.qty_scale)).astype(np.int64)
        qty = lots / self.qty_scale
        isolated_margin = qty * entry / lev
        balance = isolated_margin * pre["o_balance"][sl_]
        # Cross margin: the whole balance backs the position; capped at notional / 1.5 so a long keeps a
        # positive liquidation price. The truth's leverage is then the effective notional / wallet.
        cross = (pre["o_cross_u"][sl_] < cfg.cross_margin_share) & ~scalp  # scalpers trade isolated
        wallet = np.where(cross, np.minimum(balance, qty * entry / 1.5), isolated_margin)
        free = np.where(cross, 0.0, balance - isolated_margin)
        lev = np.where(cross, qty * entry / wallet, lev)
        priced = margin.tiered_liquidation_price(side, qty, entry, wallet, table)
        ok = np.isfinite(priced.price) & (priced.price > 0)
        sl_idx = np.arange(off, off + n)[ok]
        if not ok.all():  # infeasible (past an incomplete table): such an order is not opened
            side, lev, entry, lots, qty, wallet, minute, offset, taker, cross, free, scalp = (
                x[ok] for x in (side, lev, entry, lots, qty, wallet, minute, offset, taker, cross, free, scalp))
        liq = priced.price[ok]
        bracket = priced.bracket[ok]
        k = side.size
        if k == 0:
            return
        pid = np.arange(self.next_position_id, self.next_position_id + k)
        self.next_position_id += k
        open_ms = day_ms + minute * MS_PER_MINUTE + offset
        tp = entry * (1 + side * pre["o_tp"][sl_idx] / lev)
        sl = entry * (1 - side * pre["o_sl"][sl_idx] / lev)
        # A stop beyond the liquidation price would never fire: those traders effectively have none.
        has_sl = (pre["o_sl_u"][sl_idx] < cfg.stop_loss_share) & (side * (sl - liq) > 0)
        sl = np.where(has_sl, sl, np.nan)
        # Isolated traders without a stop may top up once, at margin_add_trigger of the way to liquidation.
        adds = ~cross & ~has_sl & (pre["o_add_u"][sl_idx] < cfg.margin_add_share) & (free > 0)
        add_trig = np.where(adds, entry + cfg.margin_add_trigger * (liq - entry), np.nan)
        lo, hi = triggers(side, liq, sl, tp, add_trig)
        # Higher leverage, shorter plan: the drawn hold is for `hold_reference_leverage`, scaled by
        # (reference / leverage)^hold_leverage_exponent (scalpers at 100x, swing traders at 3x).
        # Scalpers' holds are drawn in minutes, not scaled.
        hold_ms = np.where(scalp, pre["o_hold_ms"][sl_idx], (
            pre["o_hold_ms"][sl_idx] * (cfg.hold_reference_leverage / lev) ** cfg.hold_leverage_exponent
        ).astype(np.int64) + MS_PER_MINUTE)
        first_row = self.book.n
        if self.near is not None:
            self.near = np.concatenate([self.near, np.arange(first_row, first_row + k)])
        self.book.add(pid=pid, side=side, lots=lots, entry=entry, liq=liq, bracket=bracket, sl=sl, tp=tp,
                      lo_trig=lo, hi_trig=hi, planned_ms=open_ms + hold_ms, margin=wallet,
                      free=free, cross=cross, funding=np.zeros(k), add_trig=add_trig,
                      add_frac=pre["o_add_frac"][sl_idx], lev=lev)
        self.spec_long += int(lots[side > 0].sum())
        self.spec_short += int(lots[side < 0].sum())
        self.opened.add(pid=pid, day=np.full(k, (day - EPOCH).days), side=side, open_ms=open_ms, entry=entry,
                        lots=lots, lev=lev, margin=wallet, liq=liq, bracket=bracket, cross=cross, balance=wallet + free)
        ev.add(time=open_ms, price=entry, lots=lots, taker_buy=np.where(taker, side > 0, side < 0),
               kind=np.full(k, K_OPEN))
        self._fill_providers(side, lots, entry)
        # Positions are checked from the minute after they open: catch up the rest of the block.
        start = (minute - b0 + 1) * 60
        window = path_day[b0 * 60:(m_end + 1) * 60]
        young = start < window.size
        if young.any():
            self._check(first_row + np.flatnonzero(young), window, day_ms + b0 * MS_PER_MINUTE, start[young],
                        day, table, ev)
