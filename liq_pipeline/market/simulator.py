"""Embedded ground-truth market: a seeded agent-based simulator of Binance USD-M perpetuals (issue 3).

It writes a local mirror in the exact data.binance.vision layout (daily aggTrades, 1m klines, 1m
markPriceKlines, 5m metrics, monthly fundingRate, zips with CHECKSUM sidecars) so the pipeline ingests
it through the same archive code path as real data, and beside it the ground truth the estimator is
scored against: every position with its exact tiered liquidation price, and every liquidation.

Model, one step per minute per symbol (mark sampled every second inside the minute):
- Mark price: log-returns with stochastic volatility (AR(1) log-vol), Laplace jumps and a regime drift;
  liquidations of the previous minute push the mark against the liquidated side (cascades).
- Traders open isolated positions (Poisson arrivals, more when volatile) with a leverage mix heavy at
  10x-25x and a tail to 125x (capped by the bracket's max leverage), Pareto-tailed notionals that reach
  several maintenance tiers, and a long propensity set by a Markov regime and leaning against funding.
- A position ends at its first event: liquidation (mark crosses its exact liquidation price,
  margin.tiered_liquidation_price with the dated table in force), stop-loss, take-profit (both on mark)
  or its planned holding time. New positions are checked from the minute after they open.
- Trades: every open/close/liquidation prints one aggTrade (openers are takers with
  `taker_open_share`), noise traders fill the day up to `trades_per_day`, buying more after up-moves.
- Metrics every 5 minutes from the book (OI = sum of all open positions, long and short), funding every
  8 hours: F = P + clamp(I - P, ±0.05 %), capped at ±0.3 %, P = time average of a premium driven by
  the long/short notional imbalance (binance-data.md §6).
Not modelled: funding payments moving isolated margins (liquidation prices stay fixed, as the seed model
assumes), cross margin, hedge mode, ADL. The estimator's own assumptions (entries at volume-profile
prices, the 5/10/20/50/100 leverage mix) are deliberately not used here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy.signal import lfilter

from liq_pipeline import config
from liq_pipeline.market import formats
from liq_pipeline.market.formats import ArchiveFile
from liq_pipeline.market.sim_writer import (
    decimal_column,
    decimals_for,
    write_archive_zip,
    write_bytes_atomic,
    write_csv_atomic,
)
from liq_pipeline.model import margin

MINUTES_PER_DAY = 1440
MS_PER_MINUTE = 60_000
MS_PER_DAY = 86_400_000
_EPOCH = dt.date(1970, 1, 1)
#: Outcome codes used inside the simulator; the truth tables use the strings.
_OPEN, _CLOSED, _LIQUIDATED = 0, 1, 2
_OUTCOMES = np.array(["open", "closed", "liquidated"])


@dataclass(frozen=True)
class SimConfig:
    """Simulation parameters. Per-symbol values are `(symbol, value)` pairs so the config stays hashable.

    Defaults give a calm-to-volatile crypto market: BTC ~90,000 at 50 % annual vol, ETH ~3,000 at 65 %,
    0.4 jumps a day of ~1.2 %, regimes drifting ±0.4 %/day, 3,000 new positions per symbol-day held ~12 h (median) with a 45 % share
    of stop-losses; funding from an imbalance premium of 0.4 % per unit of net long share.
    """

    symbols: tuple[str, ...] = config.DEFAULT_SYMBOLS
    start: dt.date = config.DEFAULT_START_DATE
    days: int = 45
    seed: int = 7
    out_dir: Path = field(default_factory=config.sim_archive_dir)
    #: aggTrades per symbol-day (noise traders top the position flow up to it); benchmark: >= 1_500_000.
    trades_per_day: int = 30_000
    # ---- price ----------------------------------------------------------------------------------
    initial_prices: tuple[tuple[str, float], ...] = (("BTCUSDT", 90_000.0), ("ETHUSDT", 3_000.0))
    annual_vols: tuple[tuple[str, float], ...] = (("BTCUSDT", 0.50), ("ETHUSDT", 0.65))
    default_initial_price: float = 100.0
    default_annual_vol: float = 0.80
    #: AR(1) log-volatility: mean reversion rate per day and stationary standard deviation of log-vol.
    vol_mean_reversion_per_day: float = 3.0
    vol_of_vol: float = 0.45
    jumps_per_day: float = 0.4
    #: Laplace scale of a jump's log-return.
    jump_scale: float = 0.012
    # ---- traders --------------------------------------------------------------------------------
    positions_per_day: int = 3_000
    leverages: tuple[float, ...] = (2, 3, 5, 10, 15, 20, 25, 50, 75, 100, 125)
    leverage_weights: tuple[float, ...] = (0.03, 0.05, 0.09, 0.17, 0.14, 0.18, 0.13, 0.10, 0.04, 0.04, 0.03)
    #: Entry notional ~ Pareto(size_min_usd, alpha), truncated at size_max_usd (USDT).
    size_min_usd: float = 1_000.0
    size_tail_alpha: float = 1.15
    size_max_usd: float = 8_000_000.0
    #: Planned holding time ~ lognormal with this median (hours) and log-sd.
    median_hold_hours: float = 12.0
    hold_sigma: float = 1.3
    #: Take-profit at a PnL of this median multiple of the margin (log-sd tp_sigma).
    take_profit_margin_multiple: float = 0.8
    tp_sigma: float = 0.7
    stop_loss_share: float = 0.45
    #: Stop-loss at a loss of U(lo, hi) of the margin; dropped when it would sit beyond the liquidation price.
    stop_loss_margin_range: tuple[float, float] = (0.3, 0.85)
    regime_long_probs: tuple[float, ...] = (0.40, 0.50, 0.60)
    regime_drifts_per_day: tuple[float, ...] = (-0.004, 0.0, 0.004)
    regime_mean_hours: float = 36.0
    taker_open_share: float = 0.7
    taker_close_share: float = 0.5
    #: Mark log-displacement per unit of (liquidated notional / open notional), added the next minute and
    #: decaying with `impact_half_life_minutes` (temporary impact: the book refills after a cascade).
    liquidation_impact: float = 0.1
    max_impact_per_minute: float = 0.02
    impact_half_life_minutes: float = 45.0
    # ---- funding --------------------------------------------------------------------------------
    funding_interval_hours: int = 8
    interest_rate: float = 0.0001
    premium_gain: float = 0.004
    premium_noise: float = 0.00005
    funding_clamp: float = 0.0005
    funding_cap: float = 0.003
    #: Long propensity shift per unit of (funding - interest): traders lean against expensive funding.
    funding_sensitivity: float = 150.0
    # ---- noise traders and output ---------------------------------------------------------------
    noise_median_usd: float = 1_500.0
    noise_sigma: float = 1.6
    noise_momentum: float = 0.2
    zip_level: int = 6
    #: Symbols simulated in parallel processes (1 = in this process).
    workers: int = 2

    def validate(self) -> None:
        """Raise ValueError naming the first parameter that cannot work."""
        if not self.symbols:
            raise ValueError("SimConfig.symbols is empty")
        if self.days < 1:
            raise ValueError(f"SimConfig.days must be >= 1, not {self.days}")
        if self.trades_per_day < 0 or self.positions_per_day < 0:
            raise ValueError("trades_per_day and positions_per_day must be >= 0")
        if len(self.leverages) != len(self.leverage_weights) or min(self.leverages) < 2:
            raise ValueError("leverages need one weight each and must be >= 2 (a 1x long has no liquidation price)")
        if abs(sum(self.leverage_weights) - 1) > 1e-9 or min(self.leverage_weights) < 0:
            raise ValueError(f"leverage_weights must be >= 0 and sum to 1, not {sum(self.leverage_weights)}")
        if not 0 < self.size_min_usd < self.size_max_usd:
            raise ValueError("need 0 < size_min_usd < size_max_usd")
        if self.size_tail_alpha <= 0:
            raise ValueError("size_tail_alpha must be > 0")
        if len(self.regime_long_probs) != len(self.regime_drifts_per_day):
            raise ValueError("regime_long_probs and regime_drifts_per_day need the same length")
        if (24 * 60) % (self.funding_interval_hours * 60) != 0:
            raise ValueError(f"funding_interval_hours must divide 24, not {self.funding_interval_hours}")
        lo, hi = self.stop_loss_margin_range
        if not 0 < lo <= hi < 1:
            raise ValueError("stop_loss_margin_range must satisfy 0 < lo <= hi < 1")
        if self.impact_half_life_minutes <= 0:
            raise ValueError("impact_half_life_minutes must be > 0")
        if not 0 <= self.zip_level <= 9:
            raise ValueError("zip_level must be in 0..9")

    def initial_price(self, symbol: str) -> float:
        return dict(self.initial_prices).get(symbol, self.default_initial_price)

    def annual_vol(self, symbol: str) -> float:
        return dict(self.annual_vols).get(symbol, self.default_annual_vol)

    def to_json(self) -> dict:
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["out_dir"] = str(self.out_dir)
        return out


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


@dataclass
class SimSummary:
    symbols: dict[str, SymbolSummary]
    files: int
    seconds: float
    out_dir: str

    def to_json(self) -> dict:
        return {"symbols": {s: asdict(v) for s, v in self.symbols.items()}, "files": self.files,
                "seconds": round(self.seconds, 2), "out_dir": self.out_dir}


def epoch_ms(day: dt.date) -> int:
    """UTC midnight of `day` in epoch milliseconds."""
    return (day - _EPOCH).days * MS_PER_DAY


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
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {s: pool.submit(simulate_symbol, cfg, s, None) for s in cfg.symbols}
            for symbol in cfg.symbols:
                summaries[symbol] = futures[symbol].result()
                if progress:
                    progress(f"  {symbol}: done in {summaries[symbol].seconds:.1f} s")
    summary = SimSummary(symbols=summaries, files=sum(s.files for s in summaries.values()) + 1,
                         seconds=time.perf_counter() - t0, out_dir=str(out))
    manifest = {"config": cfg.to_json(), "seed": cfg.seed, "summary": summary.to_json()}
    write_bytes_atomic(out / "simulation.json", json.dumps(manifest, indent=2).encode())
    return summary


def simulate_symbol(cfg: SimConfig, symbol: str, progress: Callable[[str], None] | None = None) -> SymbolSummary:
    """Simulate one symbol for all days and write its archive files and ground truth."""
    t0 = time.perf_counter()
    sim = _SymbolSim(cfg, symbol)
    for i in range(cfg.days):
        day = cfg.start + dt.timedelta(days=i)
        sim.run_day(day)
        if progress and (i % 5 == 4 or i == cfg.days - 1):
            progress(f"  {symbol}: {i + 1}/{cfg.days} days, {sim.book.size} open positions, "
                     f"{sim.n_liquidations} liquidations so far")
    sim.finish()
    return SymbolSummary(symbol=symbol, rows=dict(sim.rows), positions=sim.next_position_id - 1,
                         liquidations=sim.n_liquidations, liquidated_notional_usd=round(sim.liq_notional, 2),
                         files=sim.files, seconds=round(time.perf_counter() - t0, 2))


# ---------------------------------------------------------------------------------------------------
# Book of open positions: parallel numpy arrays, compacted when positions leave.
# ---------------------------------------------------------------------------------------------------
_BOOK_FIELDS = {
    "pid": np.int64, "side": np.int64, "lots": np.int64, "entry": np.float64, "liq": np.float64,
    "sl": np.float64, "tp": np.float64, "lo_trig": np.float64, "hi_trig": np.float64, "planned_ms": np.int64,
    "margin": np.float64,
}


class _Book:
    def __init__(self) -> None:
        self.a = {name: np.empty(0, dtype=t) for name, t in _BOOK_FIELDS.items()}

    @property
    def size(self) -> int:
        return len(self.a["pid"])

    def add(self, **cols: np.ndarray) -> None:
        for name in _BOOK_FIELDS:
            self.a[name] = np.concatenate([self.a[name], cols[name].astype(_BOOK_FIELDS[name], copy=False)])

    def remove(self, mask: np.ndarray) -> None:
        keep = ~mask
        for name in _BOOK_FIELDS:
            self.a[name] = self.a[name][keep]


class _Chunks:
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


class _SymbolSim:
    """State and per-day stepping of one symbol."""

    def __init__(self, cfg: SimConfig, symbol: str) -> None:
        self.cfg = cfg
        self.symbol = symbol
        self.root = Path(cfg.out_dir)
        self.truth = self.root / "truth"
        self.rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, zlib.crc32(symbol.encode())]))
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
        self.impact_offset = 0.0  # current temporary displacement of the mark (log)
        self.book = _Book()
        self.total_lots = 0  # Σ lots of open positions (exact integer OI)
        self.signed_lots = 0  # Σ side·lots
        self.next_position_id = 1
        self.next_agg_id = 1
        self.next_trade_id = 1
        self.last_funding = cfg.interest_rate
        self.premium_sum = 0.0
        self.imbalance_sum = 0.0
        self.premium_count = 0
        self.prev_taker = (np.nan, np.nan)  # taker buy / sell volume of the previous day's last 5 minutes
        self.n_liquidations = 0
        self.liq_notional = 0.0
        self.files = 0
        self.rows: dict[str, int] = {k: 0 for k in ("aggTrades", "klines", "markPriceKlines", "metrics",
                                                     "fundingRate")}
        self.opened = _Chunks("pid", "day", "side", "open_ms", "entry", "lots", "lev", "margin", "liq", "bracket")
        self.ended = _Chunks("pid", "close_ms", "outcome")
        self.liqs = _Chunks("pid", "day", "time_ms", "side", "liq", "lots", "avg_price", "order_price")
        self.funding_rows = _Chunks("calc_ms", "settle_ms", "rate", "premium", "imbalance")
        self.funding_hist: list[dict[str, np.ndarray]] = []  # written months, for the funding truth file
        self.liq_hist: list[dict[str, np.ndarray]] = []  # written days, for the liquidation truth files

    # ---- per day ------------------------------------------------------------------------------
    def run_day(self, day: dt.date) -> None:
        cfg = self.cfg
        table = margin.table_for(self.symbol, day).table
        day_ms = epoch_ms(day)
        pre = self._predraw_day()
        path_day = np.empty(MINUTES_PER_DAY * 60)
        ev = _Chunks("time", "price", "lots", "taker_buy")
        metric_rows = _Chunks("t", "oi_lots", "mark", "count_top", "sum_top", "count_all")
        interval_min = cfg.funding_interval_hours * 60
        impact_decay = 0.5 ** (1.0 / cfg.impact_half_life_minutes)
        off = 0
        for m in range(MINUTES_PER_DAY):
            t0 = day_ms + m * MS_PER_MINUTE
            if m % 5 == 0:
                metric_rows.add(**self._metrics_sample(t0))
            if m % interval_min == 0:
                self._settle_funding(t0)
            # Mark path of this minute: pre-drawn returns plus the change of the decaying liquidation impact.
            offset = self.impact_offset * impact_decay + self.pending_impact
            path = self.mark * np.exp(pre["cumret"][m] + (offset - self.impact_offset))
            path = np.round(path * self.mark_scale) / self.mark_scale
            self.impact_offset = offset
            self.pending_impact = 0.0
            path_day[m * 60:(m + 1) * 60] = path
            self.mark = path[-1]
            if self.book.size:
                self._exits(t0, path, day, ev)
            n_open = pre["opens"][m]
            if n_open:
                self._opens(t0, path, day, table, pre, off, n_open, pre["regime"][m], ev)
                off += n_open
            imbalance = self.signed_lots / self.total_lots if self.total_lots else 0.0
            self.premium_sum += cfg.premium_gain * imbalance + cfg.premium_noise * pre["premium_z"][m]
            self.imbalance_sum += imbalance
            self.premium_count += 1
        self._write_day(day, day_ms, path_day, pre, ev.take(), metric_rows.take())

    def _predraw_day(self) -> dict[str, np.ndarray]:
        """Every random draw of the day that does not depend on the book, in bulk."""
        cfg, rng = self.cfg, self.rng
        n = MINUTES_PER_DAY
        # AR(1) log-volatility, stationary sd = vol_of_vol, continuing from yesterday's last value.
        phi = np.exp(-cfg.vol_mean_reversion_per_day / n)
        eps = rng.standard_normal(n) * cfg.vol_of_vol * np.sqrt(1 - phi * phi)
        logv, _ = lfilter([1.0], [1.0, -phi], eps, zi=[phi * self.logv])
        self.logv = float(logv[-1])
        sig = self.sigma_min * np.exp(logv - 0.5 * cfg.vol_of_vol ** 2)  # mean-one volatility multiplier
        # Markov regime: switches at exponential times, new regime uniform over all regimes.
        switch = rng.random(n) < 1.0 / (cfg.regime_mean_hours * 60)
        draws = rng.integers(0, len(cfg.regime_long_probs), n)
        last_switch = np.maximum.accumulate(np.where(switch, np.arange(n), -1))
        regime = np.where(last_switch >= 0, draws[np.maximum(last_switch, 0)], self.regime)
        self.regime = int(regime[-1])
        drift = np.asarray(cfg.regime_drifts_per_day)[regime] / n - 0.5 * sig ** 2
        ret = rng.standard_normal((n, 60)) * (sig / np.sqrt(60))[:, None] + (drift / 60)[:, None]
        jumps = rng.random(n) < cfg.jumps_per_day / n
        ret[jumps, rng.integers(0, 60, int(jumps.sum()))] += rng.laplace(0.0, cfg.jump_scale, int(jumps.sum()))
        # Openers arrive faster when the market moves (activity ~ realised vol of the minute).
        activity = sig / self.sigma_min + np.abs(ret.sum(axis=1)) / self.sigma_min
        rate = cfg.positions_per_day / n * activity / activity.mean()
        opens = rng.poisson(rate)
        k = int(opens.sum())
        lev_idx = rng.choice(len(cfg.leverages), size=k, p=np.asarray(cfg.leverage_weights))
        pareto = cfg.size_min_usd * rng.random(k) ** (-1.0 / cfg.size_tail_alpha)
        return {
            "cumret": np.cumsum(ret, axis=1), "sig": sig, "regime": regime, "opens": opens,
            "premium_z": rng.standard_normal(n),
            "o_offset": rng.integers(0, MS_PER_MINUTE, k), "o_side_u": rng.random(k),
            "o_notional": np.minimum(pareto, cfg.size_max_usd),
            "o_lev": np.asarray(cfg.leverages, dtype=np.float64)[lev_idx],
            "o_taker_u": rng.random(k), "o_tp": np.exp(rng.normal(np.log(cfg.take_profit_margin_multiple),
                                                                  cfg.tp_sigma, k)),
            "o_sl_u": rng.random(k), "o_sl": rng.uniform(*cfg.stop_loss_margin_range, k),
            "o_hold_ms": (np.exp(rng.normal(np.log(cfg.median_hold_hours), cfg.hold_sigma, k)) * 3_600_000)
            .astype(np.int64) + MS_PER_MINUTE,
        }

    def _metrics_sample(self, t0: int) -> dict[str, np.ndarray]:
        """Book state at a 5-minute boundary, before that minute's events."""
        a = self.book.a
        n = self.book.size
        count_top = sum_top = count_all = np.nan
        if n:
            is_long = a["side"] > 0
            n_long = int(is_long.sum())
            count_all = n_long / (n - n_long) if n > n_long else np.nan
            # "Top traders": the largest 20 % of positions by size.
            k = max(1, n // 5)
            top = np.argpartition(a["lots"], n - k)[n - k:]
            top_long = is_long[top]
            n_top_long = int(top_long.sum())
            if n_top_long < k:
                count_top = n_top_long / (k - n_top_long)
                sum_top = a["lots"][top][top_long].sum() / a["lots"][top][~top_long].sum()
        return {"t": [t0], "oi_lots": [self.total_lots], "mark": [self.mark], "count_top": [count_top],
                "sum_top": [sum_top], "count_all": [count_all]}

    def _settle_funding(self, t0: int) -> None:
        """Funding rate at settlement `t0`: F = P + clamp(I - P, ±clamp), capped (binance-data.md §6)."""
        cfg = self.cfg
        premium = self.premium_sum / self.premium_count if self.premium_count else 0.0
        imbalance = self.imbalance_sum / self.premium_count if self.premium_count else 0.0
        rate = premium + np.clip(cfg.interest_rate - premium, -cfg.funding_clamp, cfg.funding_clamp)
        rate = round(float(np.clip(rate, -cfg.funding_cap, cfg.funding_cap)), 8)
        # Like the real files, calc_time is sometimes the settlement instant + 1 ms.
        calc_ms = t0 + int(self.rng.random() < 0.5)
        self.funding_rows.add(calc_ms=[calc_ms], settle_ms=[t0], rate=[rate], premium=[premium],
                              imbalance=[imbalance])
        self.last_funding = rate
        self.premium_sum = self.imbalance_sum = 0.0
        self.premium_count = 0

    def _exits(self, t0: int, path: np.ndarray, day: dt.date, ev: _Chunks) -> None:
        """Close or liquidate every position whose first event falls in this minute."""
        a = self.book.a
        pmin, pmax = path.min(), path.max()
        t_end = t0 + MS_PER_MINUTE
        cand = (a["lo_trig"] >= pmin) | (a["hi_trig"] <= pmax) | (a["planned_ms"] < t_end)
        if not cand.any():
            return
        idx = np.flatnonzero(cand)
        side = a["side"][idx][:, None]
        p = path[None, :]
        is_long = side > 0

        def first(hit: np.ndarray) -> np.ndarray:
            return np.where(hit.any(axis=1), hit.argmax(axis=1), 60)

        # NaN stop/take-profit levels compare False: no trigger.
        liq = a["liq"][idx][:, None]
        s_liq = first(np.where(is_long, p <= liq, p >= liq))
        sl = a["sl"][idx][:, None]
        s_sl = first(np.where(is_long, p <= sl, p >= sl))
        tp = a["tp"][idx][:, None]
        s_tp = first(np.where(is_long, p >= tp, p <= tp))
        planned = a["planned_ms"][idx]
        s_due = np.where(planned < t_end, np.clip((planned - t0) // 1000, 0, 59), 60)
        s = np.minimum(np.minimum(s_liq, s_sl), np.minimum(s_tp, s_due))
        fired = s < 60
        idx, s, side, s_liq, s_due, planned = idx[fired], s[fired], side[fired, 0], s_liq[fired], s_due[fired], planned[fired]
        if idx.size == 0:
            return
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
        ev.add(time=close_ms, price=fill, lots=lots, taker_buy=taker_buy)
        self.ended.add(pid=a["pid"][idx], close_ms=close_ms, outcome=np.where(liquidated, _LIQUIDATED, _CLOSED))
        if liquidated.any():
            li = idx[liquidated]
            ls = side[liquidated]
            qty = lots[liquidated] / self.qty_scale
            entry = a["entry"][li]
            # Bankruptcy price (order price of the forced order): margin balance exactly zero.
            order_price = np.round((entry - ls * a["margin"][li] / qty) * self.price_scale) / self.price_scale
            self.liqs.add(pid=a["pid"][li], day=np.full(li.size, (day - _EPOCH).days), time_ms=close_ms[liquidated],
                          side=ls, liq=a["liq"][li], lots=lots[liquidated], avg_price=fill[liquidated],
                          order_price=order_price)
            notional = qty * a["liq"][li]
            self.n_liquidations += li.size
            self.liq_notional += float(notional.sum())
            open_notional = max(self.total_lots / self.qty_scale * self.mark, 1.0)
            impact = -self.cfg.liquidation_impact * float((ls * notional).sum()) / open_notional
            cap = self.cfg.max_impact_per_minute
            self.pending_impact = float(np.clip(impact, -cap, cap))
        mask = np.zeros(self.book.size, dtype=bool)
        mask[idx] = True
        self.total_lots -= int(lots.sum())
        self.signed_lots -= int((side * lots).sum())
        self.book.remove(mask)

    def _opens(self, t0: int, path: np.ndarray, day: dt.date, table: margin.BracketTable,
               pre: dict[str, np.ndarray], off: int, n: int, regime: int, ev: _Chunks) -> None:
        cfg = self.cfg
        sl_ = slice(off, off + n)
        offset = np.sort(pre["o_offset"][sl_])
        p_long = np.clip(cfg.regime_long_probs[regime] - cfg.funding_sensitivity * (self.last_funding - cfg.interest_rate),
                         0.05, 0.95)
        side = np.where(pre["o_side_u"][sl_] < p_long, 1, -1)
        notional = pre["o_notional"][sl_]
        # Leverage cannot exceed the max leverage of the tier holding the entry notional; tables without
        # it (ETH fixture) use 1/(2·MMR), which reproduces BTC's published 150/100/75/50 within rounding.
        tier = np.clip(np.searchsorted(table.notional_floor, notional, side="right") - 1, 0, len(table.mmr) - 1)
        max_lev = np.where(np.isnan(table.max_leverage[tier]), np.floor(0.5 / table.mmr[tier]), table.max_leverage[tier])
        lev = np.minimum(pre["o_lev"][sl_], max_lev)
        mark_at = path[offset // 1000]
        taker = pre["o_taker_u"][sl_] < cfg.taker_open_share
        # A taker crosses the spread (a long buys one tick above mark); a maker rests one tick inside.
        entry = np.round((mark_at + np.where(taker, side, -side) * self.tick) * self.price_scale) / self.price_scale
        lots = np.maximum(1, np.round(notional / entry * self.qty_scale)).astype(np.int64)
        qty = lots / self.qty_scale
        wallet = qty * entry / lev
        priced = margin.tiered_liquidation_price(side, qty, entry, wallet, table)
        ok = np.isfinite(priced.price) & (priced.price > 0)
        if not ok.all():  # infeasible (past an incomplete table): such an order is not opened
            side, lev, entry, lots, qty, wallet, offset, taker = (x[ok] for x in (side, lev, entry, lots, qty, wallet, offset, taker))
            sl_idx = np.arange(off, off + n)[ok]
        else:
            sl_idx = np.arange(off, off + n)
        liq = priced.price[ok]
        bracket = priced.bracket[ok]
        k = side.size
        if k == 0:
            return
        pid = np.arange(self.next_position_id, self.next_position_id + k)
        self.next_position_id += k
        open_ms = t0 + offset
        tp = entry * (1 + side * pre["o_tp"][sl_idx] / lev)
        sl = entry * (1 - side * pre["o_sl"][sl_idx] / lev)
        # A stop beyond the liquidation price would never fire: those traders effectively have none.
        has_sl = (pre["o_sl_u"][sl_idx] < cfg.stop_loss_share) & (side * (sl - liq) > 0)
        sl = np.where(has_sl, sl, np.nan)
        lo = np.where(side > 0, np.fmax(liq, sl), tp)
        hi = np.where(side > 0, tp, np.fmin(liq, sl))
        self.book.add(pid=pid, side=side, lots=lots, entry=entry, liq=liq, sl=sl, tp=tp, lo_trig=lo, hi_trig=hi,
                      planned_ms=open_ms + pre["o_hold_ms"][sl_idx], margin=wallet)
        self.total_lots += int(lots.sum())
        self.signed_lots += int((side * lots).sum())
        self.opened.add(pid=pid, day=np.full(k, (day - _EPOCH).days), side=side, open_ms=open_ms, entry=entry,
                        lots=lots, lev=lev, margin=wallet, liq=liq, bracket=bracket)
        ev.add(time=open_ms, price=entry, lots=lots, taker_buy=np.where(taker, side > 0, side < 0))

    # ---- trades and files ---------------------------------------------------------------------
    def _day_trades(self, day_ms: int, path_day: np.ndarray, pre: dict, ev: dict) -> dict[str, np.ndarray]:
        """Position flow plus noise trades, sorted by time, with continuous aggTrade and trade ids."""
        cfg, rng = self.cfg, self.rng
        n_noise = max(cfg.trades_per_day - ev["time"].size, 0)
        closes = path_day[59::60]
        prev = np.concatenate([[path_day[0]], closes[:-1]])
        ret = np.log(closes / prev)
        sig = pre["sig"]
        activity = sig + np.abs(ret)
        counts = rng.multinomial(n_noise, activity / activity.sum())
        minute = np.repeat(np.arange(MINUTES_PER_DAY), counts)
        t = day_ms + minute * MS_PER_MINUTE + rng.integers(0, MS_PER_MINUTE, n_noise)
        mark_at = path_day[(t - day_ms) // 1000]
        # Noise takers chase the minute's move (momentum), so order-flow imbalance follows price.
        buy = rng.random(n_noise) < 0.5 + cfg.noise_momentum * np.tanh(ret / sig)[minute]
        depth = rng.geometric(0.6, n_noise)  # ticks crossed: 1, 2, ...
        price = np.round((mark_at + np.where(buy, 1, -1) * depth * self.tick) * self.price_scale) / self.price_scale
        usd = np.exp(rng.normal(np.log(cfg.noise_median_usd), cfg.noise_sigma, n_noise))
        lots = np.maximum(1, np.round(usd / price * self.qty_scale)).astype(np.int64)
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

    def _write_day(self, day: dt.date, day_ms: int, path_day: np.ndarray, pre: dict, ev: dict,
                   mr: dict) -> None:
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
        mark = path_day.reshape(MINUTES_PER_DAY, 60)
        zeros = np.zeros(MINUTES_PER_DAY, dtype=np.int64)
        mark_klines = pa.table({
            "open_time": open_time, "open": decimal_column(mark[:, 0], md), "high": decimal_column(mark.max(1), md),
            "low": decimal_column(mark.min(1), md), "close": decimal_column(mark[:, -1], md), "volume": zeros,
            "close_time": close_time, "quote_volume": zeros, "count": np.full(MINUTES_PER_DAY, 60, dtype=np.int64),
            "taker_buy_volume": zeros, "taker_buy_quote_volume": zeros, "ignore": zeros,
        })
        self._zip(ArchiveFile("markPriceKlines", self.symbol, day, interval="1m"), mark_klines)
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
        write_archive_zip(self.root, spec, formats.COLUMNS[spec.kind], table, self.cfg.zip_level)
        self.rows[spec.kind] += table.num_rows
        self.files += 2

    # ---- ground truth -------------------------------------------------------------------------
    def finish(self) -> None:
        """Write positions, liquidations, funding and the forceOrder stream of the whole run."""
        op = self.opened.take()
        en = self.ended.take()
        n = op["pid"].size
        close_ms = np.full(n, -1, dtype=np.int64)
        outcome = np.full(n, _OPEN, dtype=np.int64)
        pos = en["pid"].astype(np.int64) - 1  # position ids are 1..n in opening order
        close_ms[pos] = en["close_ms"]
        outcome[pos] = en["outcome"]
        (self.truth / "positions").mkdir(parents=True, exist_ok=True)
        positions = pa.table({
            "symbol": pa.array([self.symbol] * n, pa.string()),
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
            "outcome": pa.array(_OUTCOMES[outcome].astype(str)),
        })
        _write_parquet(self.truth / "positions" / f"{self.symbol}.parquet", positions)
        parts = self.liq_hist
        liq = {k: np.concatenate([p[k] for p in parts]) if parts else np.empty(0) for k in self.liqs.parts}
        qty = liq["lots"] / self.qty_scale
        liquidations = pa.table({
            "symbol": pa.array([self.symbol] * qty.size, pa.string()),
            "day": pa.array(liq["day"].astype(np.int32), pa.date32()),
            "position_id": liq["pid"].astype(np.int64),
            "liq_time": pa.array(liq["time_ms"].astype(np.int64), pa.timestamp("ms")),
            "side": pa.array(np.where(liq["side"] > 0, "long", "short").astype(str), pa.string()),
            "price": liq["liq"].astype(np.float64),
            "quantity": qty,
            "notional_usd": qty * liq["liq"],
        })
        _write_parquet(self.truth / "liquidations" / f"{self.symbol}.parquet", liquidations)
        self._write_force_orders(liq)
        hist = self.funding_hist
        fr = {k: np.concatenate([h[k] for h in hist]) for k in hist[0]} if hist else {}
        if fr:
            funding = pa.table({
                "symbol": pa.array([self.symbol] * fr["rate"].size, pa.string()),
                "funding_time": pa.array(fr["settle_ms"].astype(np.int64), pa.timestamp("ms")),
                "funding_rate": fr["rate"].astype(np.float64),
                "mean_premium": fr["premium"].astype(np.float64),
                "mean_imbalance": fr["imbalance"].astype(np.float64),
            })
            _write_parquet(self.truth / "funding" / f"{self.symbol}.parquet", funding)
        self.files += 4

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
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
