"""Embedded ground-truth market: a seeded agent-based simulator of Binance USD-M perpetuals (issues 3, 14).

It writes a local mirror in the exact data.binance.vision layout (daily aggTrades, 1m klines, 1m
markPriceKlines, 1m premiumIndexKlines, 5m metrics, monthly fundingRate, zips with CHECKSUM sidecars)
so the pipeline ingests it through the same archive code path as real data, and beside it the ground
truth the estimator is scored against: every position with its exact tiered liquidation price, the
liquidation price in force at every day end, the providers' holdings, and every liquidation.

Model, one step per minute per symbol (mark sampled every second inside the minute):
- Mark price: log-returns with stochastic volatility (AR(1) log-vol, an hour-of-day profile), Laplace jumps
  and a regime drift; liquidations of the previous minute push the mark against the liquidated side, for
  good (cascades, no reverting noise).
- Two populations, every contract with a holder on each side (OI = Σ long = Σ short exactly):
  * speculators, one account per position: isolated or cross margin, leverage up to the tier's maximum,
    Pareto sizes, a long propensity set by a Markov regime and leaning against funding; they are the
    liquidatable population; among them scalpers, small isolated positions at 75-150x held about an hour,
    the continuous layer of liquidation prices near the mark;
  * providers: market makers, the counterparty of every speculative open, close and liquidation, who
    share inventory among themselves, and basis traders (short perp against spot) whose short grows with
    funding; large balances, low effective leverage.
- A speculative position ends at its first event: liquidation (mark crosses the liquidation price in
  force), stop-loss, take-profit (both on mark) or its planned holding time. Funding is paid out of (or
  into) the position's margin at every settlement and some isolated traders top up their margin when the
  mark comes close, so liquidation prices move over a position's life.
- Trades: every open/close/liquidation/provider rebalance prints one aggTrade; speculative openers are
  takers with `taker_open_share` (0.5 = no order-flow signal), closers with `taker_close_share`; noise
  round trips of high-frequency traders (flat at every sample) make up `noise_volume_share` of the notional.
- Metrics every 5 minutes from the accounts as Binance defines them; funding every 8 hours:
  F = P + clamp(I - P, ±0.05 %), capped at ±0.3 %, P = mean of the premium index: a structural discount,
  the speculators' long/short imbalance and a persistent basis noise (binance-data.md §3.3, §6).
Parameters and the real facts behind them: docs/simulator.md.
Not modelled: hedge mode, ADL, insurance fund, an order book. The estimator's own assumptions (entries at
volume-profile prices, the 5/10/20/50/100 leverage mix) are deliberately not used here.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from liq_pipeline import config
from liq_pipeline.model import margin
from liq_pipeline.sim.accounting import Accounting
from liq_pipeline.sim.book import Book, Chunks
from liq_pipeline.sim.config import (
    KIND_NAMES,
    MINUTES_PER_DAY,
    MS_PER_MINUTE,
    OPEN_BLOCK_MINUTES,
    PREMIUM_SAMPLES_PER_MINUTE,
    SimConfig,
    epoch_ms,
)
from liq_pipeline.sim.files import decimals_for, write_bytes_atomic
from liq_pipeline.sim.price import PriceProcess
from liq_pipeline.sim.providers import Providers
from liq_pipeline.sim.speculators import Speculators
from liq_pipeline.sim.writer import ArchiveWriter


@dataclass
class SymbolSummary:
    """What one symbol's simulation wrote."""

    symbol: str
    rows: dict[str, int]
    positions: int
    liquidations: int
    liquidated_notional_usd: float
    files: int
    seconds: float
    #: Traded notional (USDT) by origin: open, close, liquidation, provider, noise.
    volume_usd: dict[str, float] = field(default_factory=dict)


@dataclass
class SimSummary:
    symbols: dict[str, SymbolSummary]
    files: int
    seconds: float
    out_dir: str

    def to_json(self) -> dict:
        return {"symbols": {s: asdict(v) for s, v in self.symbols.items()}, "files": self.files,
                "seconds": round(self.seconds, 2), "out_dir": self.out_dir}


def simulate(cfg: SimConfig, progress: Callable[[str], None] | None = None) -> SimSummary:
    """Simulate every symbol of `cfg` into `cfg.out_dir` (mirror + `truth/`), deterministic in `cfg.seed`.

    Symbols are independent (each has its own random stream derived from the seed and the symbol name)
    and run in up to `cfg.workers` processes. Writes `simulation.json` (config, seed, summary) last.
    """
    cfg.validate()
    for symbol in cfg.symbols:
        margin.table_for(symbol, cfg.start)  # fail fast on a symbol without a bracket table
    t0 = time.perf_counter()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(cfg.workers, len(cfg.symbols), os.cpu_count() or 1))
    summaries: dict[str, SymbolSummary] = {}
    if workers == 1:
        for symbol in cfg.symbols:
            summaries[symbol] = simulate_symbol(cfg, symbol, progress)
    else:
        # Spawned, never forked: a fork of a process whose DuckDB / Arrow threads are running can die in the
        # child (seen as BrokenProcessPool in a pytest worker); pipeline/workers.py spawns for the same reason.
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {s: pool.submit(simulate_symbol, cfg, s, None) for s in cfg.symbols}
            for symbol in cfg.symbols:
                summaries[symbol] = futures[symbol].result()
                if progress:
                    progress(f"  {symbol}: done in {summaries[symbol].seconds:.1f} s")
    summary = SimSummary(symbols=summaries, files=sum(s.files for s in summaries.values()) + 1,
                         seconds=time.perf_counter() - t0, out_dir=str(out))
    manifest = {"config": cfg.to_json(), "seed": cfg.seed, "scenario": cfg.scenario, "summary": summary.to_json()}
    write_bytes_atomic(out / "simulation.json", json.dumps(manifest, indent=2).encode())
    return summary


def simulate_symbol(cfg: SimConfig, symbol: str, progress: Callable[[str], None] | None = None) -> SymbolSummary:
    """Simulate one symbol for all days and write its archive files and ground truth."""
    t0 = time.perf_counter()
    sim = SymbolSim(cfg, symbol)
    for i in range(cfg.days):
        day = cfg.start + dt.timedelta(days=i)
        sim.run_day(day)
        if progress and (i % 5 == 4 or i == cfg.days - 1):
            progress(f"  {symbol}: {i + 1}/{cfg.days} days, {sim.book.size} open positions, "
                     f"{sim.n_liquidations} liquidations so far")
    sim.finish()
    return SymbolSummary(symbol=symbol, rows=dict(sim.rows), positions=sim.next_position_id - 1,
                         liquidations=sim.n_liquidations, liquidated_notional_usd=round(sim.liq_notional, 2),
                         files=sim.files, seconds=round(time.perf_counter() - t0, 2),
                         volume_usd={k: round(v, 2) for k, v in zip(KIND_NAMES, sim.volume_usd, strict=True)})


class SymbolSim(PriceProcess, Accounting, Speculators, Providers, ArchiveWriter):
    """State and per-day stepping of one symbol. The behaviour lives by concern in the mixins: the price
    process and daily draws (price.py), speculators (speculators.py), providers (providers.py), funding,
    margins and metrics (accounting.py), and the files it writes (writer.py)."""

    def __init__(self, cfg: SimConfig, symbol: str) -> None:
        self.cfg = cfg
        self.symbol = symbol
        self.root = Path(cfg.out_dir)
        self.truth = self.root / "truth"
        self.rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, zlib.crc32(symbol.encode())]))
        # The exogenous price draws have their own stream: a change to the agents leaves the drawn path (returns,
        # volatility, regimes, jumps, premium noise) as it was, so two configs of one seed differ by mechanism.
        self.rng_price = np.random.default_rng(np.random.SeedSequence([cfg.seed, zlib.crc32(symbol.encode()), 1]))
        spec = config.symbol_spec(symbol)
        self.price_dec = decimals_for(spec.tick_size)
        self.mark_dec = self.price_dec + 1  # mark prices carry one more decimal than the tick
        self.qty_dec = decimals_for(spec.step_size)
        self.price_scale = 10.0 ** self.price_dec
        self.mark_scale = 10.0 ** self.mark_dec
        self.qty_scale = 10.0 ** self.qty_dec
        self.tick = 1.0 / self.price_scale
        self.mark = round(cfg.initial_price(symbol) * self.mark_scale) / self.mark_scale
        self.last_trade_price = round(self.mark * self.price_scale) / self.price_scale
        self.sigma_min = cfg.annual_vol(symbol) / np.sqrt(365.0 * MINUTES_PER_DAY)
        self.logv = 0.0
        self.regime = len(cfg.regime_long_probs) // 2
        self.pending_impact = 0.0  # log-impact of the last minute's liquidations, applied next minute
        self.impact_offset = 0.0  # temporary displacement of the mark by liquidations (log), decaying
        self.impact_permanent = 0.0  # permanent displacement (log): the part of the impact that stays
        self.book = Book()
        self.pending_fills: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.near: np.ndarray | None = None  # rows the exit scan looks at (see NEAR_BAND)
        self.near_lo = self.near_hi = 0.0
        self.near_until = 0
        self.spec_long = 0  # Σ lots of open speculative longs / shorts (exact integers)
        self.spec_short = 0
        # Providers: market makers first, then basis traders. Signed inventory in lots (one-way mode: one
        # position per account), equity in USDT (marked to market every minute), average entry price.
        k_mm, k_b = cfg.market_makers, cfg.basis_traders
        self.n_mm = k_mm
        self.prov_role = np.r_[np.zeros(k_mm, dtype=np.int64), np.ones(k_b, dtype=np.int64)]
        w = self.rng.pareto(1.5, k_mm + k_b) + 1.0
        self.mm_w = w[:k_mm] / w[:k_mm].sum()
        self.mm_cum = np.cumsum(self.mm_w)
        self.basis_w = w[k_mm:] / w[k_mm:].sum() if k_b else np.empty(0)
        capital = cfg.provider_capital_multiple * cfg.expected_speculative_gross_usd()
        self.prov_equity = np.r_[self.mm_w * capital, self.basis_w * capital * cfg.basis_share]
        self.prov_inv = np.zeros(k_mm + k_b, dtype=np.int64)
        self.prov_entry = np.full(k_mm + k_b, self.mark)
        self.prov_funding = np.zeros(k_mm + k_b)
        self.table = margin.table_for(symbol, cfg.start).table  # bracket table of the day being simulated
        self.next_position_id = 1
        self.next_agg_id = 1
        self.next_trade_id = 1
        self.last_funding = cfg.interest_rate
        self.premium_sum = 0.0
        self.imbalance_sum = 0.0
        self.premium_count = 0
        self.premium_ar = 0.0  # the AR(1) basis noise of the premium index, carried from day to day
        self.prev_taker = (np.nan, np.nan)  # taker buy / sell volume of the previous day's last 5 minutes
        self.n_liquidations = 0
        self.liq_notional = 0.0
        self.volume_usd = np.zeros(len(KIND_NAMES))
        self.files = 0
        self.rows: dict[str, int] = {k: 0 for k in ("aggTrades", "klines", "markPriceKlines", "premiumIndexKlines",
                                                     "metrics", "fundingRate")}
        self.opened = Chunks("pid", "day", "side", "open_ms", "entry", "lots", "lev", "margin", "liq", "bracket",
                              "cross", "balance")
        self.ended = Chunks("pid", "close_ms", "outcome")
        self.changes = Chunks("pid", "time_ms", "margin", "liq", "bracket")
        self.liqs = Chunks("pid", "day", "time_ms", "side", "liq", "lots", "avg_price", "order_price")
        self.funding_rows = Chunks("calc_ms", "settle_ms", "rate", "premium", "imbalance", "mark")
        self.day_end = Chunks("day", "pid", "side", "entry", "lots", "lev", "margin", "liq", "bracket", "cross",
                               "funding", "population", "mark")
        self.prov_samples = Chunks("t", "account", "inv", "equity", "entry", "mark")
        self.funding_hist: list[dict[str, np.ndarray]] = []  # written months, for the funding truth file
        self.liq_hist: list[dict[str, np.ndarray]] = []  # written days, for the liquidation truth files

    # ---- per day ------------------------------------------------------------------------------
    def run_day(self, day: dt.date) -> None:
        cfg = self.cfg
        table = margin.table_for(self.symbol, day).table
        self.table = table
        day_ms = epoch_ms(day)
        pre = self._predraw_day()
        path_day = np.empty(MINUTES_PER_DAY * 60)
        premium_day = np.empty((MINUTES_PER_DAY, PREMIUM_SAMPLES_PER_MINUTE))
        ev = Chunks("time", "price", "lots", "taker_buy", "kind")
        metric_rows = Chunks("t", "oi_lots", "mark", "count_top", "sum_top", "count_all")
        interval_min = cfg.funding_interval_hours * 60
        impact_decay = 0.5 ** (1.0 / cfg.impact_half_life_minutes)
        off = 0
        for m in range(MINUTES_PER_DAY):
            t0 = day_ms + m * MS_PER_MINUTE
            if m % 5 == 0:
                metric_rows.add(**self._metrics_sample(t0))
            if m % interval_min == 0:
                self._settle_funding(t0, table)
            # Mark path of this minute: pre-drawn returns plus the change of the liquidation impact.
            temporary = 1.0 - cfg.impact_permanent_share
            offset = self.impact_offset * impact_decay + self.pending_impact * temporary
            permanent = self.pending_impact * cfg.impact_permanent_share
            path = self.mark * np.exp(pre["cumret"][m] + (offset - self.impact_offset) + permanent)
            path = np.round(path * self.mark_scale) / self.mark_scale
            self.impact_offset = offset
            self.pending_impact = 0.0
            path_day[m * 60:(m + 1) * 60] = path
            # Providers are marked to market every minute (realized + unrealized PnL of the inventory).
            self.prov_equity += self.prov_inv / self.qty_scale * (path[-1] - self.mark)
            self.mark = path[-1]
            if self.book.size:
                self._exits(t0, path, day, table, ev)
            if m % OPEN_BLOCK_MINUTES == OPEN_BLOCK_MINUTES - 1:
                b0 = m + 1 - OPEN_BLOCK_MINUTES
                n_open = int(pre["opens"][b0:m + 1].sum())
                if n_open:
                    self._opens(day_ms, path_day, b0, m, day, table, pre, off, n_open, ev)
                    off += n_open
            self._apply_fills()
            self._providers_rebalance(t0, m, pre, ev)
            gross = self.spec_long + self.spec_short
            imbalance = (self.spec_long - self.spec_short) / gross if gross else 0.0
            samples = np.round(cfg.premium_offset + cfg.premium_gain * imbalance + pre["premium_ar"][m]
                               + cfg.premium_sample_noise * pre["premium_z"][m], 8)
            premium_day[m] = samples
            self.premium_sum += float(samples.mean())
            self.imbalance_sum += imbalance
            self.premium_count += 1
        self._record_day_end(day, table)
        self._write_day(day, day_ms, path_day, premium_day, pre, ev.take(), metric_rows.take())
