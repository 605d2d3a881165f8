"""Accounting of one simulated symbol: funding (premium index → rate → payments out of margin), liquidation
prices in force after margin changes, the public 5-minute metrics over accounts, the providers' cross-margin
liquidation prices and the day-end record of every open position."""

from __future__ import annotations

import datetime as dt

import numpy as np

from liq_pipeline.model import margin
from liq_pipeline.sim.book import triggers
from liq_pipeline.sim.config import EPOCH, MS_PER_DAY


class Accounting:
    """Part of `market.SymbolSim`: funding, margins, liquidation prices, metrics samples."""

    def _metrics_sample(self, t0: int) -> dict[str, np.ndarray]:
        """Public ratios at a 5-minute boundary, before that minute's events, computed over ACCOUNTS as
        Binance defines them (binance-data.md §3.4): every speculative position is one account and every
        provider with a position one more. count_long_short_ratio: accounts net long / net short, all
        accounts; the top-trader ratios use the top 20 % of accounts by margin balance (wallet + uPnL):
        count = accounts long / short among them, sum = their long / short quantity."""
        live = np.flatnonzero(self.book.a["alive"])
        a = {k: self.book.a[k][live] for k in ("side", "lots", "entry", "margin", "free")}
        oi = self.spec_long + int(np.maximum(self.prov_inv, 0).sum())
        if oi != self.spec_short + int(np.maximum(-self.prov_inv, 0).sum()):
            raise AssertionError(f"{self.symbol}: open interest is not conserved at {t0}")
        upnl = a["side"] * a["lots"] / self.qty_scale * (self.mark - a["entry"])
        has = self.prov_inv != 0
        side = np.concatenate([a["side"], np.sign(self.prov_inv[has])])
        qty = np.concatenate([a["lots"], np.abs(self.prov_inv[has])])
        balance = np.concatenate([a["margin"] + a["free"] + upnl, self.prov_equity[has]])
        n = side.size
        count_top = sum_top = count_all = np.nan
        if n:
            is_long = side > 0
            n_long = int(is_long.sum())
            count_all = n_long / (n - n_long) if n > n_long else np.nan
            k = max(1, n // 5)
            top = np.argpartition(balance, n - k)[n - k:]
            top_long = is_long[top]
            n_top_long = int(top_long.sum())
            if n_top_long < k:
                count_top = n_top_long / (k - n_top_long)
                sum_top = qty[top][top_long].sum() / qty[top][~top_long].sum()
        self.prov_samples.add(t=np.full(self.prov_inv.size, t0), account=np.arange(1, self.prov_inv.size + 1),
                              inv=self.prov_inv.copy(), equity=self.prov_equity.copy(),
                              entry=self.prov_entry.copy(), mark=np.full(self.prov_inv.size, self.mark))
        return {"t": [t0], "oi_lots": [oi], "mark": [self.mark], "count_top": [count_top],
                "sum_top": [sum_top], "count_all": [count_all]}

    def _provider_liq_prices(self, inv: np.ndarray, equity: np.ndarray, mark: np.ndarray,
                             t_ms: np.ndarray) -> np.ndarray:
        """Cross-margin liquidation price of provider positions (the equity backs the position, entry taken
        at the mark with the equity as wallet, which is the same price); nan when flat or when no positive
        price exists (a long whose equity exceeds its notional)."""
        out = np.full(inv.size, np.nan)
        day = (t_ms // MS_PER_DAY).astype(np.int64)
        for d in np.unique(day):
            rows = np.flatnonzero((day == d) & (inv != 0))
            if rows.size:
                table = margin.table_for(self.symbol, EPOCH + dt.timedelta(days=int(d))).table
                with np.errstate(invalid="ignore", divide="ignore"):
                    priced = margin.tiered_liquidation_price(np.sign(inv[rows]), np.abs(inv[rows]) / self.qty_scale,
                                                             mark[rows], equity[rows], table)
                out[rows] = priced.price
        return out

    def _settle_funding(self, t0: int, table: margin.BracketTable) -> None:
        """Funding at settlement `t0`: F = P + clamp(I - P, ±clamp), capped (binance-data.md §6), then paid:
        every position pays side · quantity · mark · F out of its margin (isolated margin, or the cross
        wallet), so liquidation prices move; providers pay it out of their equity."""
        cfg = self.cfg
        premium = self.premium_sum / self.premium_count if self.premium_count else 0.0
        imbalance = self.imbalance_sum / self.premium_count if self.premium_count else 0.0
        rate = premium + np.clip(cfg.interest_rate - premium, -cfg.funding_clamp, cfg.funding_clamp)
        rate = round(float(np.clip(rate, -cfg.funding_cap, cfg.funding_cap)), 8)
        # Like the real files, calc_time is sometimes the settlement instant + 1 ms.
        calc_ms = t0 + int(self.rng.random() < 0.5)
        self.funding_rows.add(calc_ms=[calc_ms], settle_ms=[t0], rate=[rate], premium=[premium],
                              imbalance=[imbalance], mark=[self.mark])
        self.last_funding = rate
        self.premium_sum = self.imbalance_sum = 0.0
        self.premium_count = 0
        a = self.book.a
        if self.book.size:
            live = np.flatnonzero(a["alive"])
            pay = a["side"][live] * a["lots"][live] / self.qty_scale * self.mark * rate
            a["margin"][live] -= pay
            a["funding"][live] += pay
            self._reprice(live, table)
            self.near = None  # liquidation prices moved
        prov_pay = self.prov_inv / self.qty_scale * self.mark * rate
        self.prov_equity -= prov_pay
        self.prov_funding += prov_pay

    def _reprice(self, idx: np.ndarray, table: margin.BracketTable) -> None:
        """Recompute the liquidation price in force (and the trigger bands) of book rows `idx` after their
        margin changed. A margin that no longer admits a positive price (a wiped-out long) liquidates at
        the next mark sample: its price is set to +inf (long) / 0 (short) for the engine."""
        a = self.book.a
        side = a["side"][idx]
        priced = margin.tiered_liquidation_price(side, a["lots"][idx] / self.qty_scale, a["entry"][idx],
                                                 a["margin"][idx], table)
        lost = ~np.isfinite(priced.price) | (priced.price <= 0)
        gone = lost & (a["margin"][idx] <= 0)
        liq = np.where(gone, np.where(side > 0, np.inf, 0.0), priced.price)
        a["liq"][idx] = liq
        a["bracket"][idx] = np.where(lost, a["bracket"][idx], priced.bracket)
        lo, hi = triggers(side, liq, a["sl"][idx], a["tp"][idx], a["add_trig"][idx])
        a["lo_trig"][idx] = lo
        a["hi_trig"][idx] = hi

    def _record_day_end(self, day: dt.date, table: margin.BracketTable) -> None:
        """Every open position at the end of `day` with the margin and liquidation price then in force:
        speculators by position, providers by account (position_id = −account)."""
        a = {k: v[self.book.a["alive"]] for k, v in self.book.a.items()}
        n = self.book.size
        d = (day - EPOCH).days
        self.day_end.add(day=np.full(n, d), pid=a["pid"], side=a["side"], entry=a["entry"], lots=a["lots"],
                         lev=a["lev"], margin=a["margin"], liq=a["liq"], bracket=a["bracket"], cross=a["cross"],
                         funding=a["funding"], population=np.zeros(n, dtype=np.int64), mark=np.full(n, self.mark))
        has = np.flatnonzero(self.prov_inv != 0)
        if has.size:
            qty = np.abs(self.prov_inv[has]) / self.qty_scale
            with np.errstate(invalid="ignore"):
                priced = margin.tiered_liquidation_price(np.sign(self.prov_inv[has]), qty, self.mark,
                                                         self.prov_equity[has], table)
            liq = priced.price
            self.day_end.add(day=np.full(has.size, d), pid=-(has + 1), side=np.sign(self.prov_inv[has]),
                             entry=self.prov_entry[has], lots=np.abs(self.prov_inv[has]),
                             lev=qty * self.mark / self.prov_equity[has], margin=self.prov_equity[has], liq=liq,
                             bracket=np.where(np.isfinite(priced.price), priced.bracket, 0), cross=np.ones(has.size, bool),
                             funding=self.prov_funding[has], population=1 + self.prov_role[has],
                             mark=np.full(has.size, self.mark))
