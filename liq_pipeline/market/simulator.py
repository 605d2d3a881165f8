"""Embedded ground-truth market: a seeded agent-based simulator of Binance USD-M perpetuals (issues 3, 14).

It writes a local mirror in the exact data.binance.vision layout (daily aggTrades, 1m klines, 1m
markPriceKlines, 1m premiumIndexKlines, 5m metrics, monthly fundingRate, zips with CHECKSUM sidecars)
so the pipeline ingests it through the same archive code path as real data, and beside it the ground
truth the estimator is scored against: every position with its exact tiered liquidation price, the
liquidation price in force at every day end, the providers' holdings, and every liquidation.

Model, one step per minute per symbol (mark sampled every second inside the minute):
- Mark price: log-returns with stochastic volatility (AR(1) log-vol), Laplace jumps and a regime drift;
  liquidations of the previous minute push the mark against the liquidated side (cascades).
- Two populations, every contract with a holder on each side (OI = Σ long = Σ short exactly):
  * speculators, one account per position: isolated or cross margin, leverage up to the tier's maximum,
    Pareto sizes, a long propensity set by a Markov regime and leaning against funding; they are the
    liquidatable population;
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
  F = P + clamp(I - P, ±0.05 %), capped at ±0.3 %, P = mean of the premium index, driven by the
  speculators' long/short imbalance (binance-data.md §3.3, §6).
Not modelled: hedge mode, ADL, insurance fund, an order book. The estimator's own assumptions (entries at
volume-profile prices, the 5/10/20/50/100 leverage mix) are deliberately not used here.
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
#: Premium index samples per minute (one every 5 s, binance-data.md §3.3: count 12 per 1m kline).
PREMIUM_SAMPLES_PER_MINUTE = 12
_EPOCH = dt.date(1970, 1, 1)
#: Opens are booked in blocks of this many minutes (each with its own time and entry price) and their
#: exits inside the block are caught up on the recorded mark path: it divides the 5-minute metrics grid
#: and the funding interval, so samples and settlements always see every earlier open.
OPEN_BLOCK_MINUTES = 5
#: The per-minute exit scan looks only at rows with a trigger within this fraction of the mark or an exit
#: planned within NEAR_MINUTES; the set is rebuilt when the mark leaves half the band, on time, and after
#: anything that moves triggers closer (settlements) or renumbers rows (compaction).
NEAR_BAND = 0.015
NEAR_MINUTES = 30
#: Outcome codes used inside the simulator; the truth tables use the strings.
_OPEN, _CLOSED, _LIQUIDATED = 0, 1, 2
_OUTCOMES = np.array(["open", "closed", "liquidated"])
#: Trade origin codes (volume accounting in the summary).
_K_OPEN, _K_CLOSE, _K_LIQ, _K_PROVIDER, _K_NOISE = 0, 1, 2, 3, 4
_KIND_NAMES = ("open", "close", "liquidation", "provider", "noise")
_ROLES = np.array(["market_maker", "basis"])

#: Named markets for `liq simulate --scenario`: overrides of the SimConfig defaults (calm = the defaults).
SCENARIOS: dict[str, dict] = {
    # The defaults: a calm-to-volatile month of BTC/ETH, regime drifts of ±0.4 %/day.
    "calm": {},
    # Long directional regimes that speculators chase (they crowd the trend's side harder).
    "trending": {
        "regime_drifts_per_day": (-0.02, 0.0, 0.02), "regime_mean_hours": 120.0,
        "regime_long_probs": (0.36, 0.5, 0.64), "jumps_per_day": 0.3,
    },
    # More leverage, more and larger jumps, stronger liquidation impact that decays slower: cascades.
    "cascade": {
        "leverage_weights": (0.02, 0.03, 0.05, 0.10, 0.10, 0.15, 0.13, 0.17, 0.09, 0.09, 0.07),
        "jumps_per_day": 1.2, "jump_scale": 0.018, "vol_of_vol": 0.6, "liquidation_impact": 0.3,
        "max_impact_per_minute": 0.04, "impact_half_life_minutes": 90.0,
        "regime_long_probs": (0.32, 0.5, 0.68),
    },
}


@dataclass(frozen=True)
class SimConfig:
    """Simulation parameters. Per-symbol values are `(symbol, value)` pairs so the config stays hashable.

    Defaults (scenario `calm`) give a calm-to-volatile crypto market: BTC ~90,000 at 50 % annual vol,
    ETH ~3,000 at 65 %, 0.4 jumps a day of ~1.2 %, regimes drifting ±0.4 %/day, 9,000 new speculative
    positions per symbol-day held ~40 h (median), Pareto sizes with α = 1.5; the README explains each.
    Use `SimConfig.for_scenario(name, ...)` for the other scenarios.
    """

    symbols: tuple[str, ...] = config.DEFAULT_SYMBOLS
    start: dt.date = config.DEFAULT_START_DATE
    days: int = 45
    seed: int = 7
    out_dir: Path = field(default_factory=config.sim_archive_dir)
    #: Label of the preset the fields come from (SCENARIOS); recorded in simulation.json.
    scenario: str = "calm"
    #: aggTrades per symbol-day: noise round trips top the position and provider flow up to it.
    trades_per_day: int = 40_000
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
    # ---- speculators ----------------------------------------------------------------------------
    positions_per_day: int = 9_000
    leverages: tuple[float, ...] = (2, 3, 5, 10, 15, 20, 25, 50, 75, 100, 125)
    leverage_weights: tuple[float, ...] = (0.03, 0.05, 0.09, 0.17, 0.14, 0.18, 0.13, 0.10, 0.04, 0.04, 0.03)
    #: Entry notional ~ Pareto(size_min_usd, alpha), truncated at size_max_usd (USDT).
    size_min_usd: float = 1_000.0
    size_tail_alpha: float = 1.5
    size_max_usd: float = 2_500_000.0
    #: Larger accounts use less leverage: the drawn leverage is scaled by (notional / size_min_usd)^−exponent
    #: and floored to an integer >= 2 (an assumption; Binance's tiers cap leverage in the same direction).
    leverage_size_exponent: float = 0.25
    #: Share of speculators in cross margin: their whole account balance backs the position.
    cross_margin_share: float = 0.5
    #: Account balance / position margin ~ 1 + lognormal(median, sigma): free collateral besides the margin.
    balance_multiple_median: float = 1.5
    balance_multiple_sigma: float = 0.9
    #: Share of isolated speculators who top up their margin once, when the mark has covered
    #: `margin_add_trigger` of the way from entry to liquidation, by U(lo, hi) of the margin.
    margin_add_share: float = 0.15
    margin_add_trigger: float = 0.6
    margin_add_range: tuple[float, float] = (0.3, 1.0)
    #: Planned holding time ~ lognormal with this median (hours) and log-sd.
    median_hold_hours: float = 40.0
    hold_sigma: float = 1.4
    #: Take-profit at a PnL of this median multiple of the margin (log-sd tp_sigma).
    take_profit_margin_multiple: float = 0.8
    tp_sigma: float = 0.7
    stop_loss_share: float = 0.45
    #: Stop-loss at a loss of U(lo, hi) of the margin; dropped when it would sit beyond the liquidation price.
    stop_loss_margin_range: tuple[float, float] = (0.3, 0.85)
    regime_long_probs: tuple[float, ...] = (0.40, 0.50, 0.60)
    regime_drifts_per_day: tuple[float, ...] = (-0.004, 0.0, 0.004)
    regime_mean_hours: float = 36.0
    #: Probability that a speculative opener takes liquidity; 0.5 = opens carry no order-flow signal.
    taker_open_share: float = 0.7
    taker_close_share: float = 0.5
    #: Mark log-displacement per unit of (liquidated notional / open interest), added the next minute and
    #: decaying with `impact_half_life_minutes` (temporary impact: the book refills after a cascade).
    liquidation_impact: float = 0.1
    max_impact_per_minute: float = 0.02
    impact_half_life_minutes: float = 45.0
    # ---- providers ------------------------------------------------------------------------------
    market_makers: int = 12
    basis_traders: int = 8
    #: Basis traders' short target as a share of the speculators' gross notional at baseline funding,
    #: scaled by 1 + basis_funding_sensitivity · (F − I), clipped to [0, 2].
    basis_share: float = 0.4
    basis_funding_sensitivity: float = 2_000.0
    #: A basis trader revisits its target on average every this many minutes and closes half the gap.
    basis_rebalance_minutes: float = 30.0
    #: Probability per minute that the two market makers with the most different inventories trade a
    #: third of the difference (inventory sharing).
    mm_rebalance_prob: float = 0.3
    #: Providers' capital as a multiple of the expected speculative gross notional.
    provider_capital_multiple: float = 3.0
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
    #: Share of the traded notional from noise round trips (high-frequency traders, flat at every sample).
    noise_volume_share: float = 0.2
    noise_sigma: float = 1.6
    noise_momentum: float = 0.2
    zip_level: int = 3
    #: Symbols simulated in parallel processes (1 = in this process).
    workers: int = 2

    @classmethod
    def for_scenario(cls, scenario: str, **overrides) -> SimConfig:
        """The config of a named scenario (SCENARIOS), with explicit overrides on top."""
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}")
        return cls(scenario=scenario, **{**SCENARIOS[scenario], **overrides})

    def validate(self) -> None:
        """Raise ValueError naming the first parameter that cannot work."""
        if not self.symbols:
            raise ValueError("SimConfig.symbols is empty")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}: choose one of {', '.join(SCENARIOS)}")
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
        if self.leverage_size_exponent < 0:
            raise ValueError("leverage_size_exponent must be >= 0")
        if len(self.regime_long_probs) != len(self.regime_drifts_per_day):
            raise ValueError("regime_long_probs and regime_drifts_per_day need the same length")
        if (24 * 60) % (self.funding_interval_hours * 60) != 0:
            raise ValueError(f"funding_interval_hours must divide 24, not {self.funding_interval_hours}")
        lo, hi = self.stop_loss_margin_range
        if not 0 < lo <= hi < 1:
            raise ValueError("stop_loss_margin_range must satisfy 0 < lo <= hi < 1")
        for name in ("taker_open_share", "taker_close_share", "cross_margin_share", "margin_add_share",
                     "mm_rebalance_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], not {getattr(self, name)}")
        if not 0 <= self.noise_volume_share < 1:
            raise ValueError(f"noise_volume_share must be in [0, 1), not {self.noise_volume_share}")
        if not 0 < self.margin_add_trigger < 1:
            raise ValueError("margin_add_trigger must be in (0, 1)")
        if self.market_makers < 2 or self.basis_traders < 0:
            raise ValueError("need at least 2 market_makers and basis_traders >= 0")
        if self.impact_half_life_minutes <= 0:
            raise ValueError("impact_half_life_minutes must be > 0")
        if not 0 <= self.zip_level <= 9:
            raise ValueError("zip_level must be in 0..9")

    def initial_price(self, symbol: str) -> float:
        return dict(self.initial_prices).get(symbol, self.default_initial_price)

    def annual_vol(self, symbol: str) -> float:
        return dict(self.annual_vols).get(symbol, self.default_annual_vol)

    def expected_speculative_gross_usd(self) -> float:
        """Rough steady-state open speculative notional: opens/day × mean size × mean holding (days).

        Used only to size the providers' capital and the first basis target; the mean holding time is
        the lognormal mean shortened by a factor 0.6 for the stops, take-profits and liquidations."""
        a, lo, hi = self.size_tail_alpha, self.size_min_usd, self.size_max_usd
        mean_size = lo * a / (a - 1) * (1 - (lo / hi) ** (a - 1)) if a != 1 else lo * np.log(hi / lo)
        hold_days = self.median_hold_hours * np.exp(self.hold_sigma ** 2 / 2) / 24 * 0.6
        return float(self.positions_per_day * mean_size * hold_days)

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
    manifest = {"config": cfg.to_json(), "seed": cfg.seed, "scenario": cfg.scenario, "summary": summary.to_json()}
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
                         files=sim.files, seconds=round(time.perf_counter() - t0, 2),
                         volume_usd={k: round(v, 2) for k, v in zip(_KIND_NAMES, sim.volume_usd, strict=True)})


# ---------------------------------------------------------------------------------------------------
# Book of open speculative positions: parallel numpy arrays, compacted when positions leave.
# ---------------------------------------------------------------------------------------------------
_BOOK_FIELDS = {
    "pid": np.int64, "side": np.int64, "lots": np.int64, "entry": np.float64, "liq": np.float64,
    "bracket": np.int64, "sl": np.float64, "tp": np.float64, "lo_trig": np.float64, "hi_trig": np.float64,
    "planned_ms": np.int64,
    # Wallet balance backing the position (isolated margin, or the account's balance in cross margin),
    # free collateral outside it (0 in cross), cumulative funding paid, margin-top-up trigger (nan: none).
    "margin": np.float64, "free": np.float64, "cross": np.bool_, "funding": np.float64, "add_trig": np.float64,
    "add_frac": np.float64, "lev": np.float64,
}


class _Book:
    """Capacity-doubling columns with lazy removal: a removed row gets `alive` False and NaN triggers (so
    no check ever fires on it) and the arrays are compacted once a quarter of the rows are dead."""

    def __init__(self) -> None:
        self.n = 0  # rows in use (alive or dead)
        self.dead = 0
        self.cap = 1024
        self.cols = {name: np.empty(self.cap, dtype=t) for name, t in _BOOK_FIELDS.items()}
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
        for name in _BOOK_FIELDS:
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
        a["planned_ms"][idx] = np.iinfo(np.int64).max
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


def _triggers(side: np.ndarray, liq: np.ndarray, sl: np.ndarray, tp: np.ndarray,
              add: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest trigger below and above entry: for a long (liq, stop, top-up) below and the take-profit
    above; for a short the mirror. NaN levels are ignored (fmax/fmin)."""
    lo = np.where(side > 0, np.fmax(np.fmax(liq, sl), add), tp)
    hi = np.where(side > 0, tp, np.fmin(np.fmin(liq, sl), add))
    return lo, hi


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
        self.spec_gross_ema = cfg.expected_speculative_gross_usd() / self.mark * self.qty_scale
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
        self.volume_usd = np.zeros(len(_KIND_NAMES))
        self.files = 0
        self.rows: dict[str, int] = {k: 0 for k in ("aggTrades", "klines", "markPriceKlines", "premiumIndexKlines",
                                                     "metrics", "fundingRate")}
        self.opened = _Chunks("pid", "day", "side", "open_ms", "entry", "lots", "lev", "margin", "liq", "bracket",
                              "cross", "balance")
        self.ended = _Chunks("pid", "close_ms", "outcome")
        self.changes = _Chunks("pid", "time_ms", "margin", "liq", "bracket")
        self.liqs = _Chunks("pid", "day", "time_ms", "side", "liq", "lots", "avg_price", "order_price")
        self.funding_rows = _Chunks("calc_ms", "settle_ms", "rate", "premium", "imbalance", "mark")
        self.day_end = _Chunks("day", "pid", "side", "entry", "lots", "lev", "margin", "liq", "bracket", "cross",
                               "funding", "population", "mark")
        self.prov_samples = _Chunks("t", "account", "inv", "equity", "entry", "mark")
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
        ev = _Chunks("time", "price", "lots", "taker_buy", "kind")
        metric_rows = _Chunks("t", "oi_lots", "mark", "count_top", "sum_top", "count_all")
        interval_min = cfg.funding_interval_hours * 60
        impact_decay = 0.5 ** (1.0 / cfg.impact_half_life_minutes)
        off = 0
        for m in range(MINUTES_PER_DAY):
            t0 = day_ms + m * MS_PER_MINUTE
            if m % 5 == 0:
                metric_rows.add(**self._metrics_sample(t0))
            if m % interval_min == 0:
                self._settle_funding(t0, table)
            # Mark path of this minute: pre-drawn returns plus the change of the decaying liquidation impact.
            offset = self.impact_offset * impact_decay + self.pending_impact
            path = self.mark * np.exp(pre["cumret"][m] + (offset - self.impact_offset))
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
            self.spec_gross_ema += (gross - self.spec_gross_ema) / 1440.0
            samples = np.round(cfg.premium_gain * imbalance + cfg.premium_noise * pre["premium_z"][m], 8)
            premium_day[m] = samples
            self.premium_sum += float(samples.mean())
            self.imbalance_sum += imbalance
            self.premium_count += 1
        self._record_day_end(day, table)
        self._write_day(day, day_ms, path_day, premium_day, pre, ev.take(), metric_rows.take())

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
        minute = np.repeat(np.arange(n), opens)
        offset = rng.integers(0, MS_PER_MINUTE, k)
        order = np.lexsort((offset, minute))
        lev_idx = rng.choice(len(cfg.leverages), size=k, p=np.asarray(cfg.leverage_weights))
        pareto = cfg.size_min_usd * rng.random(k) ** (-1.0 / cfg.size_tail_alpha)
        lo, hi = cfg.margin_add_range
        return {
            "cumret": np.cumsum(ret, axis=1), "sig": sig, "regime": regime, "opens": opens,
            "premium_z": rng.standard_normal((n, PREMIUM_SAMPLES_PER_MINUTE)),
            "o_minute": minute, "o_offset": offset[order], "o_side_u": rng.random(k),
            "o_notional": np.minimum(pareto, cfg.size_max_usd),
            "o_lev": np.asarray(cfg.leverages, dtype=np.float64)[lev_idx],
            "o_taker_u": rng.random(k), "o_tp": np.exp(rng.normal(np.log(cfg.take_profit_margin_multiple),
                                                                  cfg.tp_sigma, k)),
            "o_sl_u": rng.random(k), "o_sl": rng.uniform(*cfg.stop_loss_margin_range, k),
            "o_hold_ms": (np.exp(rng.normal(np.log(cfg.median_hold_hours), cfg.hold_sigma, k)) * 3_600_000)
            .astype(np.int64) + MS_PER_MINUTE,
            "o_cross_u": rng.random(k),
            "o_balance": 1.0 + np.exp(rng.normal(np.log(cfg.balance_multiple_median), cfg.balance_multiple_sigma, k)),
            "o_add_u": rng.random(k), "o_add_frac": rng.uniform(lo, hi, k),
            "basis_u": rng.random((n, max(cfg.basis_traders, 1))), "mm_u": rng.random(n),
        }

    def _metrics_sample(self, t0: int) -> dict[str, np.ndarray]:
        """Public ratios at a 5-minute boundary, before that minute's events, computed over ACCOUNTS as
        Binance defines them (binance-data.md §3.4): every speculative position is one account and every
        provider with a position one more. count_long_short_ratio: accounts net long / net short, all
        accounts; the top-trader ratios use the top 20 % of accounts by margin balance (wallet + uPnL):
        count = accounts long / short among them, sum = their long / short quantity."""
        live = np.flatnonzero(self.book.a["alive"])
        a = {k: self.book.a[k][live] for k in ("side", "lots", "entry", "margin", "free")}
        oi = self.spec_long + int(np.clip(self.prov_inv, 0, None).sum())
        if oi != self.spec_short + int(np.clip(-self.prov_inv, 0, None).sum()):
            raise AssertionError(f"{self.symbol}: open interest is not conserved at {t0}")
        upnl = a["side"] * a["lots"] / self.qty_scale * (self.mark - a["entry"])
        has = self.prov_inv != 0
        side = np.r_[a["side"], np.sign(self.prov_inv[has])]
        qty = np.r_[a["lots"], np.abs(self.prov_inv[has])]
        balance = np.r_[a["margin"] + a["free"] + upnl, self.prov_equity[has]]
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
                table = margin.table_for(self.symbol, _EPOCH + dt.timedelta(days=int(d))).table
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
        lo, hi = _triggers(side, liq, a["sl"][idx], a["tp"][idx], a["add_trig"][idx])
        a["lo_trig"][idx] = lo
        a["hi_trig"][idx] = hi

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

    def _providers_rebalance(self, t0: int, m: int, pre: dict, ev: _Chunks) -> None:
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
                target = -cfg.basis_share * self.spec_gross_ema * scale * self.basis_w[due]
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
        ev.add(time=times, price=price, lots=lots, taker_buy=taker_buy, kind=np.full(n, _K_PROVIDER))

    def _exits(self, t0: int, path: np.ndarray, day: dt.date, table: margin.BracketTable, ev: _Chunks) -> None:
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
               table: margin.BracketTable, ev: _Chunks) -> None:
        """First event of book rows `idx` on the mark samples `path` (one a second from `t0`), each row from
        its sample `start` on (None: all from 0). Liquidation wins ties (the engine acts on the same sample)."""
        a = self.book.a
        w = path.size
        side = a["side"][idx][:, None]
        p = path[None, :]
        is_long = side > 0
        valid = None if start is None else np.arange(w)[None, :] >= start[:, None]

        def first(hit: np.ndarray) -> np.ndarray:
            if valid is not None:
                hit &= valid
            return np.where(hit.any(axis=1), hit.argmax(axis=1), w)

        # NaN stop/take-profit levels compare False: no trigger.
        liq = a["liq"][idx][:, None]
        s_liq = first(np.where(is_long, p <= liq, p >= liq))
        sl = a["sl"][idx][:, None]
        s_sl = first(np.where(is_long, p <= sl, p >= sl))
        tp = a["tp"][idx][:, None]
        s_tp = first(np.where(is_long, p >= tp, p <= tp))
        add = a["add_trig"][idx][:, None]
        s_add = first(np.where(is_long, p <= add, p >= add))
        planned = a["planned_ms"][idx]
        lo = 0 if start is None else start
        s_due = np.where(planned < t0 + w * 1000, np.clip((planned - t0) // 1000, lo, w - 1), w)
        s = np.minimum(np.minimum(s_liq, s_sl), np.minimum(s_tp, s_due))
        fired = s < w
        top_up = idx[~fired & (s_add < w)]
        if top_up.size:  # before the closes: they compact the book and shift the indices
            self._top_up(top_up, t0 + w * 1000 - 1, table)
        if fired.any():
            self._close(idx[fired], s[fired], s_liq[fired], s_due[fired], planned[fired], t0, path, day, ev)

    def _close(self, idx: np.ndarray, s: np.ndarray, s_liq: np.ndarray, s_due: np.ndarray,
               planned: np.ndarray, t0: int, path: np.ndarray, day: dt.date, ev: _Chunks) -> None:
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
               kind=np.where(liquidated, _K_LIQ, _K_CLOSE))
        self._fill_providers(-side, lots, fill)
        self.ended.add(pid=a["pid"][idx], close_ms=close_ms, outcome=np.where(liquidated, _LIQUIDATED, _CLOSED))
        if liquidated.any():
            li = idx[liquidated]
            ls = side[liquidated]
            qty = lots[liquidated] / self.qty_scale
            entry = a["entry"][li]
            # Bankruptcy price (order price of the forced order): margin balance exactly zero, with the
            # margin in force (after funding and top-ups).
            order_price = np.round((entry - ls * a["margin"][li] / qty) * self.price_scale) / self.price_scale
            order_price = np.maximum(order_price, self.tick)
            self.liqs.add(pid=a["pid"][li], day=np.full(li.size, (day - _EPOCH).days), time_ms=close_ms[liquidated],
                          side=ls, liq=a["liq"][li], lots=lots[liquidated], avg_price=fill[liquidated],
                          order_price=order_price)
            notional = qty * a["liq"][li]
            self.n_liquidations += li.size
            self.liq_notional += float(notional.sum())
            oi_lots = self.spec_long + int(np.clip(self.prov_inv, 0, None).sum())
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
               table: margin.BracketTable, pre: dict[str, np.ndarray], off: int, n: int, ev: _Chunks) -> None:
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
        lev = np.maximum(2.0, np.floor(pre["o_lev"][sl_] * (notional / cfg.size_min_usd) ** -cfg.leverage_size_exponent))
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
        cross = pre["o_cross_u"][sl_] < cfg.cross_margin_share
        wallet = np.where(cross, np.minimum(balance, qty * entry / 1.5), isolated_margin)
        free = np.where(cross, 0.0, balance - isolated_margin)
        lev = np.where(cross, qty * entry / wallet, lev)
        priced = margin.tiered_liquidation_price(side, qty, entry, wallet, table)
        ok = np.isfinite(priced.price) & (priced.price > 0)
        sl_idx = np.arange(off, off + n)[ok]
        if not ok.all():  # infeasible (past an incomplete table): such an order is not opened
            side, lev, entry, lots, qty, wallet, minute, offset, taker, cross, free = (
                x[ok] for x in (side, lev, entry, lots, qty, wallet, minute, offset, taker, cross, free))
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
        lo, hi = _triggers(side, liq, sl, tp, add_trig)
        first_row = self.book.n
        if self.near is not None:
            self.near = np.r_[self.near, np.arange(first_row, first_row + k)]
        self.book.add(pid=pid, side=side, lots=lots, entry=entry, liq=liq, bracket=bracket, sl=sl, tp=tp,
                      lo_trig=lo, hi_trig=hi, planned_ms=open_ms + pre["o_hold_ms"][sl_idx], margin=wallet,
                      free=free, cross=cross, funding=np.zeros(k), add_trig=add_trig,
                      add_frac=pre["o_add_frac"][sl_idx], lev=lev)
        self.spec_long += int(lots[side > 0].sum())
        self.spec_short += int(lots[side < 0].sum())
        self.opened.add(pid=pid, day=np.full(k, (day - _EPOCH).days), side=side, open_ms=open_ms, entry=entry,
                        lots=lots, lev=lev, margin=wallet, liq=liq, bracket=bracket, cross=cross, balance=wallet + free)
        ev.add(time=open_ms, price=entry, lots=lots, taker_buy=np.where(taker, side > 0, side < 0),
               kind=np.full(k, _K_OPEN))
        self._fill_providers(side, lots, entry)
        # Positions are checked from the minute after they open: catch up the rest of the block.
        start = (minute - b0 + 1) * 60
        window = path_day[b0 * 60:(m_end + 1) * 60]
        young = start < window.size
        if young.any():
            self._check(first_row + np.flatnonzero(young), window, day_ms + b0 * MS_PER_MINUTE, start[young],
                        day, table, ev)

    def _record_day_end(self, day: dt.date, table: margin.BracketTable) -> None:
        """Every open position at the end of `day` with the margin and liquidation price then in force:
        speculators by position, providers by account (position_id = −account)."""
        a = {k: v[self.book.a["alive"]] for k, v in self.book.a.items()}
        n = self.book.size
        d = (day - _EPOCH).days
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

    # ---- trades and files ---------------------------------------------------------------------
    def _day_trades(self, day_ms: int, path_day: np.ndarray, pre: dict, ev: dict) -> dict[str, np.ndarray]:
        """Position and provider flow plus noise round trips, sorted by time, with continuous ids.

        Noise: high-frequency round trips inside one minute (flat at every metrics sample, so OI is
        untouched): the entry leg's taker side chases the minute's move (momentum), the exit leg is taker
        or maker at random. Their sizes are scaled so that they make `noise_volume_share` of the notional."""
        cfg, rng = self.cfg, self.rng
        flow_usd = ev["lots"] / self.qty_scale * ev["price"]
        self.volume_usd[: _K_NOISE] += np.bincount(ev["kind"].astype(np.int64), flow_usd, _K_NOISE)
        n_pairs = max(cfg.trades_per_day - ev["time"].size, 0) // 2
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
        self.volume_usd[_K_NOISE] += float((lots / self.qty_scale * price).sum())
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

    # ---- ground truth -------------------------------------------------------------------------
    def finish(self) -> None:
        """Write positions, day-end states, providers, margin changes, liquidations, funding and the
        forceOrder stream of the whole run."""
        op = self.opened.take()
        en = self.ended.take()
        n = op["pid"].size
        close_ms = np.full(n, -1, dtype=np.int64)
        outcome = np.full(n, _OPEN, dtype=np.int64)
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
            "outcome": pa.array(_OUTCOMES[outcome].astype(str)),
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
            "role": pa.array(_ROLES[self.prov_role[ps["account"].astype(np.int64) - 1]].astype(str)),
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

