"""The simulator's output: the day's aggTrades (position, provider and noise flow), klines, mark and premium
klines, metrics, funding and liquidation snapshots in the data.binance.vision layout, and at the end the
ground truth (positions, day-end states, providers, margin changes, liquidations, funding, forceOrder)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from liq_pipeline.market import formats
from liq_pipeline.market.formats import ArchiveFile
from liq_pipeline.sim.config import (
    K_NOISE,
    MINUTES_PER_DAY,
    MS_PER_MINUTE,
    OPEN,
    OUTCOMES,
    PREMIUM_SAMPLES_PER_MINUTE,
    ROLES,
)
from liq_pipeline.sim.files import decimal_column, write_archive_zip, write_bytes_atomic, write_csv_atomic


class ArchiveWriter:
    """Part of `market.SymbolSim`: everything it writes."""

    def _day_trades(self, day_ms: int, path_day: np.ndarray, pre: dict, ev: dict) -> dict[str, np.ndarray]:
        """Position and provider flow plus noise round trips, sorted by time, with continuous ids.

        Noise: high-frequency round trips inside one minute (flat at every metrics sample, so OI is
        untouched): the entry leg's taker side chases the minute's move (momentum), the exit leg is taker
        or maker at random. Their sizes are scaled so that they make `noise_volume_share` of the notional."""
        cfg, rng = self.cfg, self.rng
        flow_usd = ev["lots"] / self.qty_scale * ev["price"]
        self.volume_usd[: K_NOISE] += np.bincount(ev["kind"].astype(np.int64), flow_usd, K_NOISE)
        # Round trips fill the day up to trades_per_day; on a day whose own flow exceeds it they are still at
        # least as many trades as the flow (high-frequency trades outnumber position trades): a busy day
        # keeps its noise volume (noise_volume_share) instead of losing it.
        n_pairs = max(cfg.trades_per_day - ev["time"].size, ev["time"].size) // 2
        closes = path_day[59::60]
        prev = np.concatenate([[path_day[0]], closes[:-1]])
        ret = np.log(closes / prev)
        sig = pre["sig"]
        activity = sig + np.abs(ret)
        counts = rng.multinomial(n_pairs, activity / activity.sum())
        minute = np.repeat(np.arange(MINUTES_PER_DAY), counts)
        t = np.sort(day_ms + minute[:, None] * MS_PER_MINUTE + rng.integers(0, MS_PER_MINUTE, (n_pairs, 2)), axis=1)
        buy_first = rng.random(n_pairs) < 0.5 + cfg.noise_momentum * np.tanh(ret / sig)[minute]
        exit_taker = rng.random(n_pairs) < 0.5
        # Entry leg: taker in its own direction. Exit leg: the trader reverses; as maker the counterparty
        # takes the other side, so the taker side is the entry's direction again.
        buy = np.stack([buy_first, np.where(exit_taker, ~buy_first, buy_first)], axis=1).ravel()
        t = t.ravel()
        usd = np.exp(rng.normal(0.0, cfg.noise_sigma, n_pairs))
        if n_pairs and cfg.noise_volume_share > 0:
            target = cfg.noise_volume_share / (1 - cfg.noise_volume_share) * float(flow_usd.sum())
            usd *= target / 2 / usd.sum()
        mark_at = path_day[(t - day_ms) // 1000]
        depth = rng.geometric(0.6, t.size)  # ticks crossed: 1, 2, ...
        price = np.round((mark_at + np.where(buy, 1, -1) * depth * self.tick) * self.price_scale) / self.price_scale
        lots = np.maximum(1, np.round(np.repeat(usd, 2) / price * self.qty_scale)).astype(np.int64)
        lots[1::2] = lots[0::2]  # a round trip sells what it bought
        self.volume_usd[K_NOISE] += float((lots / self.qty_scale * price).sum())
        time_ms = np.concatenate([ev["time"].astype(np.int64), t])
        order = np.argsort(time_ms, kind="stable")
        time_ms = time_ms[order]
        price = np.concatenate([ev["price"].astype(np.float64), price])[order]
        lots = np.concatenate([ev["lots"].astype(np.int64), lots])[order]
        buy = np.concatenate([ev["taker_buy"].astype(bool), buy])[order]
        n = time_ms.size
        agg_id = np.arange(self.next_agg_id, self.next_agg_id + n, dtype=np.int64)
        self.next_agg_id += n
        # Underlying fills per aggTrade: more for bigger orders.
        fills = 1 + rng.poisson(0.5 + 0.4 * np.log1p(lots / self.qty_scale * price / 10_000.0))
        last_id = self.next_trade_id - 1 + np.cumsum(fills)
        first_id = last_id - fills + 1
        self.next_trade_id = int(last_id[-1]) + 1 if n else self.next_trade_id
        return {"agg_id": agg_id, "price": price, "lots": lots, "first_id": first_id, "last_id": last_id,
                "time": time_ms, "buy": buy, "fills": fills}

    def _trade_klines(self, day_ms: int, tr: dict) -> dict[str, np.ndarray]:
        """1m klines from the day's trades; a minute without trades repeats the previous close."""
        n = MINUTES_PER_DAY
        minute = (tr["time"] - day_ms) // MS_PER_MINUTE
        qty = tr["lots"] / self.qty_scale
        quote = qty * tr["price"]
        vol = np.bincount(minute, qty, n)
        count = np.bincount(minute, tr["fills"], n).astype(np.int64)
        has = np.bincount(minute, minlength=n) > 0
        starts = np.searchsorted(minute, np.arange(n))
        ends = np.searchsorted(minute, np.arange(n), side="right")
        close = np.full(n, np.nan)
        open_ = np.full(n, np.nan)
        high = np.full(n, np.nan)
        low = np.full(n, np.nan)
        if tr["time"].size:
            seg = starts[has]
            open_[has] = tr["price"][seg]
            close[has] = tr["price"][ends[has] - 1]
            high[has] = np.maximum.reduceat(tr["price"], seg)
            low[has] = np.minimum.reduceat(tr["price"], seg)
        # Forward-fill empty minutes from the last close (yesterday's close for the first ones).
        idx = np.maximum.accumulate(np.where(has, np.arange(n), -1))
        filled_close = np.where(idx >= 0, close[np.maximum(idx, 0)], self.last_trade_price)
        prev_close = np.concatenate([[self.last_trade_price], filled_close[:-1]])
        for arr in (open_, high, low):
            arr[~has] = prev_close[~has]
        close[~has] = prev_close[~has]
        self.last_trade_price = float(close[-1])
        buy_vol = np.bincount(minute, qty * tr["buy"], n)
        buy_quote = np.bincount(minute, quote * tr["buy"], n)
        return {"open": open_, "high": high, "low": low, "close": close, "volume": vol,
                "quote": np.bincount(minute, quote, n), "count": count, "buy_vol": buy_vol, "buy_quote": buy_quote}

    def _write_day(self, day: dt.date, day_ms: int, path_day: np.ndarray, premium_day: np.ndarray, pre: dict,
                   ev: dict, mr: dict) -> None:
        cfg = self.cfg
        tr = self._day_trades(day_ms, path_day, pre, ev)
        qd, pd_, md = self.qty_dec, self.price_dec, self.mark_dec
        agg = pa.table({
            "agg_trade_id": tr["agg_id"], "price": decimal_column(tr["price"], pd_),
            "quantity": decimal_column(tr["lots"] / self.qty_scale, qd), "first_trade_id": tr["first_id"],
            "last_trade_id": tr["last_id"], "transact_time": tr["time"],
            # is_buyer_maker is true exactly when the taker sold.
            "is_buyer_maker": ~tr["buy"],
        })
        self._zip(ArchiveFile("aggTrades", self.symbol, day), agg)
        open_time = day_ms + np.arange(MINUTES_PER_DAY, dtype=np.int64) * MS_PER_MINUTE
        close_time = open_time + MS_PER_MINUTE - 1
        k = self._trade_klines(day_ms, tr)
        klines = pa.table({
            "open_time": open_time, "open": decimal_column(k["open"], pd_), "high": decimal_column(k["high"], pd_),
            "low": decimal_column(k["low"], pd_), "close": decimal_column(k["close"], pd_),
            "volume": decimal_column(k["volume"], qd), "close_time": close_time,
            "quote_volume": decimal_column(k["quote"], 5), "count": k["count"],
            "taker_buy_volume": decimal_column(k["buy_vol"], qd),
            "taker_buy_quote_volume": decimal_column(k["buy_quote"], 5),
            "ignore": np.zeros(MINUTES_PER_DAY, dtype=np.int64),
        })
        self._zip(ArchiveFile("klines", self.symbol, day, interval="1m"), klines)
        zeros = np.zeros(MINUTES_PER_DAY, dtype=np.int64)
        for kind, samples, dec, count in (("markPriceKlines", path_day.reshape(MINUTES_PER_DAY, 60), md, 60),
                                          ("premiumIndexKlines", premium_day, 8, PREMIUM_SAMPLES_PER_MINUTE)):
            table = pa.table({
                "open_time": open_time, "open": decimal_column(samples[:, 0], dec),
                "high": decimal_column(samples.max(1), dec), "low": decimal_column(samples.min(1), dec),
                "close": decimal_column(samples[:, -1], dec), "volume": zeros, "close_time": close_time,
                "quote_volume": zeros, "count": np.full(MINUTES_PER_DAY, count, dtype=np.int64),
                "taker_buy_volume": zeros, "taker_buy_quote_volume": zeros, "ignore": zeros,
            })
            self._zip(ArchiveFile(kind, self.symbol, day, interval="1m"), table)
        self._write_metrics(day, day_ms, tr, mr)
        self._write_liquidation_snapshot(day)
        month = day.replace(day=1)
        last_of_month = (day + dt.timedelta(days=1)).month != day.month
        last_day = day == cfg.start + dt.timedelta(days=cfg.days - 1)
        if last_of_month or last_day:
            self._write_funding_month(month)

    def _write_metrics(self, day: dt.date, day_ms: int, tr: dict, mr: dict) -> None:
        # Taker buy/sell volume ratio over the 5 minutes before each sample.
        bucket = (tr["time"] - day_ms) // (5 * MS_PER_MINUTE)
        qty = tr["lots"] / self.qty_scale
        buy = np.bincount(bucket, qty * tr["buy"], 288)
        sell = np.bincount(bucket, qty * ~tr["buy"], 288)
        prev_buy = np.concatenate([[self.prev_taker[0]], buy[:-1]])
        prev_sell = np.concatenate([[self.prev_taker[1]], sell[:-1]])
        self.prev_taker = (float(buy[-1]), float(sell[-1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            taker_ratio = np.where(prev_sell > 0, prev_buy / prev_sell, np.nan)
        t = mr["t"].astype(np.int64)
        oi = mr["oi_lots"] / self.qty_scale
        create_time = pc.replace_substring(pa.array(np.datetime_as_string(t.astype("datetime64[ms]"), unit="s")), "T", " ")
        metrics = pa.table({
            "create_time": create_time, "symbol": pa.array([self.symbol] * t.size),
            "sum_open_interest": decimal_column(oi, self.qty_dec),
            "sum_open_interest_value": decimal_column(oi * mr["mark"], 8),
            "count_toptrader_long_short_ratio": decimal_column(mr["count_top"], 8, nullable=True),
            "sum_toptrader_long_short_ratio": decimal_column(mr["sum_top"], 8, nullable=True),
            "count_long_short_ratio": decimal_column(mr["count_all"], 8, nullable=True),
            "sum_taker_long_short_vol_ratio": decimal_column(taker_ratio, 8, nullable=True),
        })
        self._zip(ArchiveFile("metrics", self.symbol, day), metrics)

    def _write_funding_month(self, month: dt.date) -> None:
        rows = self.funding_rows.take()
        self.funding_hist.append(rows)
        table = pa.table({
            "calc_time": rows["calc_ms"].astype(np.int64),
            "funding_interval_hours": np.full(rows["calc_ms"].size, self.cfg.funding_interval_hours, dtype=np.int64),
            "last_funding_rate": decimal_column(rows["rate"], 8),
        })
        self._zip(ArchiveFile("fundingRate", self.symbol, month, cadence="monthly"), table)

    def _write_liquidation_snapshot(self, day: dt.date) -> None:
        """Today's liquidations in the former liquidationSnapshot layout (side SELL = long liquidated)."""
        liq = self.liqs.take()
        order = np.lexsort((liq["pid"], liq["time_ms"]))  # exits are collected per minute by book order
        liq = {k: v[order] for k, v in liq.items()}
        self.liq_hist.append(liq)
        n = liq["pid"].size
        qty = decimal_column(liq["lots"] / self.qty_scale, self.qty_dec) if n else pa.array([], pa.decimal128(38, self.qty_dec))
        table = pa.table({
            "time": liq["time_ms"].astype(np.int64),
            "side": pa.array(np.where(liq["side"] > 0, "SELL", "BUY").astype(str)),
            "order_type": pa.array(["LIMIT"] * n, pa.string()), "time_in_force": pa.array(["IOC"] * n, pa.string()),
            "original_quantity": qty,
            "price": decimal_column(liq["order_price"], self.price_dec),
            "average_price": decimal_column(liq["avg_price"], self.price_dec),
            "order_status": pa.array(["FILLED"] * n, pa.string()), "last_fill_quantity": qty,
            "accumulated_fill_quantity": qty,
        })
        path = self.truth / "liquidationSnapshot" / self.symbol / f"{self.symbol}-liquidationSnapshot-{day.isoformat()}.csv"
        write_csv_atomic(path, formats.LIQUIDATION_SNAPSHOT_COLUMNS, table)
        self.files += 1

    def _zip(self, spec: ArchiveFile, table: pa.Table) -> None:
        write_archive_zip(self.root, spec, formats.KLINES_COLUMNS if spec.kind in formats.KLINE_KINDS
                          else formats.COLUMNS[spec.kind], table, self.cfg.zip_level)
        self.rows[spec.kind] += table.num_rows
        self.files += 2

    def finish(self) -> None:
        """Write positions, day-end states, providers, margin changes, liquidations, funding and the
        forceOrder stream of the whole run."""
        op = self.opened.take()
        en = self.ended.take()
        n = op["pid"].size
        close_ms = np.full(n, -1, dtype=np.int64)
        outcome = np.full(n, OPEN, dtype=np.int64)
        pos = en["pid"].astype(np.int64) - 1  # position ids are 1..n in opening order
        close_ms[pos] = en["close_ms"]
        outcome[pos] = en["outcome"]
        sym = self.symbol
        positions = pa.table({
            "symbol": pa.array([sym] * n, pa.string()),
            "day": pa.array(op["day"].astype(np.int32), pa.date32()),
            "position_id": op["pid"].astype(np.int64),
            "side": pa.array(np.where(op["side"] > 0, "long", "short").astype(str)),
            "open_time": pa.array(op["open_ms"].astype(np.int64), pa.timestamp("ms")),
            "close_time": pa.array(close_ms, pa.timestamp("ms"), mask=close_ms < 0),
            "entry_price": op["entry"].astype(np.float64),
            "quantity": op["lots"] / self.qty_scale,
            "leverage": op["lev"].astype(np.float64),
            "isolated_margin_usd": op["margin"].astype(np.float64),
            "liq_price": op["liq"].astype(np.float64),
            "bracket": op["bracket"].astype(np.int32),
            "outcome": pa.array(OUTCOMES[outcome].astype(str)),
            "margin_mode": pa.array(np.where(op["cross"].astype(bool), "cross", "isolated").astype(str)),
            "account_balance_usd": op["balance"].astype(np.float64),
        })
        _write_parquet(self.truth / "positions" / f"{sym}.parquet", positions)
        de = self.day_end.take()
        m = de["pid"].size
        population = np.array(["speculator", "market_maker", "basis"])[de["population"].astype(np.int64)]
        open_positions = pa.table({
            "symbol": pa.array([sym] * m, pa.string()),
            "day": pa.array(de["day"].astype(np.int32), pa.date32()),
            "position_id": de["pid"].astype(np.int64),
            "population": pa.array(population.astype(str)),
            "side": pa.array(np.where(de["side"] > 0, "long", "short").astype(str)),
            "margin_mode": pa.array(np.where(de["cross"].astype(bool), "cross", "isolated").astype(str)),
            "entry_price": de["entry"].astype(np.float64),
            "quantity": de["lots"] / self.qty_scale,
            "leverage": de["lev"].astype(np.float64),
            "isolated_margin_usd": de["margin"].astype(np.float64),
            "liq_price": de["liq"].astype(np.float64),
            "bracket": de["bracket"].astype(np.int32),
            "funding_paid_usd": de["funding"].astype(np.float64),
            "mark_price": de["mark"].astype(np.float64),
        })
        _write_parquet(self.truth / "open_positions" / f"{sym}.parquet", open_positions)
        ps = self.prov_samples.take()
        k = ps["t"].size
        ps["liq"] = self._provider_liq_prices(ps["inv"], ps["equity"], ps["mark"], ps["t"])
        providers = pa.table({
            "symbol": pa.array([sym] * k, pa.string()),
            "time": pa.array(ps["t"].astype(np.int64), pa.timestamp("ms")),
            "account_id": ps["account"].astype(np.int64),
            "role": pa.array(ROLES[self.prov_role[ps["account"].astype(np.int64) - 1]].astype(str)),
            "position_quantity": ps["inv"] / self.qty_scale,  # signed: > 0 long, < 0 short
            "entry_price": ps["entry"].astype(np.float64),
            "equity_usd": ps["equity"].astype(np.float64),
            "liq_price": ps["liq"].astype(np.float64),
            "mark_price": ps["mark"].astype(np.float64),
        })
        _write_parquet(self.truth / "providers" / f"{sym}.parquet", providers)
        ch = self.changes.take()
        changes = pa.table({
            "symbol": pa.array([sym] * ch["pid"].size, pa.string()),
            "position_id": ch["pid"].astype(np.int64),
            "change_time": pa.array(ch["time_ms"].astype(np.int64), pa.timestamp("ms")),
            "kind": pa.array(["margin_top_up"] * ch["pid"].size, pa.string()),
            "isolated_margin_usd": ch["margin"].astype(np.float64),
            "liq_price": ch["liq"].astype(np.float64),
            "bracket": ch["bracket"].astype(np.int32),
        })
        _write_parquet(self.truth / "margin_changes" / f"{sym}.parquet", changes)
        parts = self.liq_hist
        liq = {k: np.concatenate([p[k] for p in parts]) if parts else np.empty(0) for k in self.liqs.parts}
        qty = liq["lots"] / self.qty_scale
        liquidations = pa.table({
            "symbol": pa.array([sym] * qty.size, pa.string()),
            "day": pa.array(liq["day"].astype(np.int32), pa.date32()),
            "position_id": liq["pid"].astype(np.int64),
            "liq_time": pa.array(liq["time_ms"].astype(np.int64), pa.timestamp("ms")),
            "side": pa.array(np.where(liq["side"] > 0, "long", "short").astype(str), pa.string()),
            "price": liq["liq"].astype(np.float64),
            "quantity": qty,
            "notional_usd": qty * liq["liq"],
        })
        _write_parquet(self.truth / "liquidations" / f"{sym}.parquet", liquidations)
        self._write_force_orders(liq)
        hist = self.funding_hist
        fr = {k: np.concatenate([h[k] for h in hist]) for k in hist[0]} if hist else {}
        if fr:
            funding = pa.table({
                "symbol": pa.array([sym] * fr["rate"].size, pa.string()),
                "funding_time": pa.array(fr["settle_ms"].astype(np.int64), pa.timestamp("ms")),
                "funding_rate": fr["rate"].astype(np.float64),
                "mean_premium": fr["premium"].astype(np.float64),
                "mean_imbalance": fr["imbalance"].astype(np.float64),
                "mark_price": fr["mark"].astype(np.float64),
            })
            _write_parquet(self.truth / "funding" / f"{sym}.parquet", funding)
        self.files += 7

    def _write_force_orders(self, liq: dict[str, np.ndarray]) -> None:
        """`!forceOrder@arr` payloads as Binance publishes them: at most one per symbol per second, the
        latest (binance-data.md §5.10), so totals from this file are a lower bound, as live."""
        t = liq["time_ms"].astype(np.int64)
        keep = np.ones(t.size, dtype=bool)
        if t.size:
            sec = t // 1000
            keep[:-1] = sec[1:] != sec[:-1]  # liquidations are in time order: keep each second's last
        t = t[keep]
        event = t + 3  # the stream event follows the trade by a few ms
        qty = decimal_column(liq["lots"][keep] / self.qty_scale, self.qty_dec).cast(pa.string())
        price = decimal_column(liq["order_price"][keep], self.price_dec).cast(pa.string())
        avg = decimal_column(liq["avg_price"][keep], self.price_dec).cast(pa.string())
        side = pa.array(np.where(liq["side"][keep] > 0, "SELL", "BUY").astype(str), pa.string())
        lines = pc.binary_join_element_wise(
            '{"e":"forceOrder","E":', pa.array(event).cast(pa.string()), ',"o":{"s":"', self.symbol, '","S":"', side,
            '","o":"LIMIT","f":"IOC","q":"', qty, '","p":"', price, '","ap":"', avg, '","X":"FILLED","l":"', qty,
            '","z":"', qty, '","T":', pa.array(t).cast(pa.string()), "}}", "")
        text = "\n".join(lines.to_pylist()) + ("\n" if len(lines) else "")
        write_bytes_atomic(self.truth / "forceOrder" / f"{self.symbol}.jsonl", text.encode())


def _write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    # Row groups of 64k rows: the truth assets read one day at a time and skip the others by statistics.
    pq.write_table(table, tmp, compression="zstd", row_group_size=65_536)
    os.replace(tmp, path)


