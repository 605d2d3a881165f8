"""Parameters of the simulated market: `SimConfig` (defaults = scenario `calm`), the named scenarios, and the
clock and code constants every part of the simulator shares. docs/simulator.md justifies each parameter."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from liq_pipeline import config

MINUTES_PER_DAY = 1440
MS_PER_MINUTE = 60_000
MS_PER_DAY = 86_400_000
#: Premium index samples per minute (one every 5 s, binance-data.md §3.3: count 12 per 1m kline).
PREMIUM_SAMPLES_PER_MINUTE = 12
EPOCH = dt.date(1970, 1, 1)
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
OPEN, CLOSED, LIQUIDATED = 0, 1, 2
OUTCOMES = np.array(["open", "closed", "liquidated"])
#: Trade origin codes (volume accounting in the summary).
K_OPEN, K_CLOSE, K_LIQ, K_PROVIDER, K_NOISE = 0, 1, 2, 3, 4
KIND_NAMES = ("open", "close", "liquidation", "provider", "noise")
ROLES = np.array(["market_maker", "basis"])

#: Named markets for `liq simulate --scenario`: overrides of the SimConfig defaults (calm = the defaults).
SCENARIOS: dict[str, dict] = {
    # The defaults, calibrated to real BTCUSDT (Dec 2025 - Feb 2026) by `liq realism`; docs/simulator.md.
    "calm": {},
    # A sustained directional market that speculators chase: regimes drifting ±1.2 %/day for ~5 days. Its
    # real episode is the slide of 2026-01-16 .. 01-29 (sim/episodes.py); `liq realism --episode trending`
    # shows it does not reproduce it yet (docs/simulator.md: too much liquidation and OI churn).
    "trending": {
        "regime_drifts_per_day": (-0.012, 0.0, 0.012), "regime_mean_hours": 120.0,
        "regime_long_probs": (0.40, 0.54, 0.68), "jumps_per_day": 0.3,
    },
    # More leverage, more and larger jumps, deeper liquidation impact: liquidation cascades. Its real episode
    # is the storm of 2026-01-30 .. 02-12 (sim/episodes.py, the window's four largest liquidation days);
    # `liq realism --episode cascade` shows it does not reproduce it yet (docs/simulator.md).
    "cascade": {
        "leverage_weights": (0.02, 0.03, 0.05, 0.10, 0.10, 0.15, 0.13, 0.17, 0.09, 0.09, 0.07),
        "jumps_per_day": 1.2, "jump_scale": 0.018, "vol_of_vol": 0.8, "liquidation_impact": 1.0,
        "max_impact_per_minute": 0.04, "regime_long_probs": (0.38, 0.54, 0.70),
    },
}


@dataclass(frozen=True)
class SimConfig:
    """Simulation parameters. Per-symbol values are `(symbol, value)` pairs so the config stays hashable.

    Defaults (scenario `calm`) are calibrated to real BTCUSDT with `liq realism`: BTC ~90,000 at 50 % annual
    vol, ETH ~3,000 at 65 %, 9,000 new speculative positions per symbol-day, basis traders holding a stable
    base of the OI; docs/simulator.md gives the real fact or the assumption behind each parameter.
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
    vol_mean_reversion_per_day: float = 1.5
    vol_of_vol: float = 0.6
    #: Volatility multiplier per UTC hour of day (normalised to mean square 1): real BTCUSDT's hourly return
    #: sd by hour, rounded (US session 14-18 UTC at 1.2-1.7x, Asian night 0.6-0.8x; docs/simulator.md).
    intraday_vol_profile: tuple[float, ...] = (0.8, 1.1, 0.9, 0.8, 0.6, 0.7, 0.9, 0.6, 0.7, 0.8, 0.7, 0.7,
                                               0.8, 1.0, 1.4, 1.7, 1.4, 1.4, 1.2, 1.2, 1.0, 0.8, 0.8, 0.8)
    jumps_per_day: float = 0.4
    #: Laplace scale of a jump's log-return.
    jump_scale: float = 0.012
    # ---- speculators ----------------------------------------------------------------------------
    positions_per_day: int = 9_000
    leverages: tuple[float, ...] = (2, 3, 5, 10, 15, 20, 25, 50, 75, 100, 125)
    leverage_weights: tuple[float, ...] = (0.03, 0.04, 0.07, 0.14, 0.12, 0.18, 0.14, 0.12, 0.06, 0.05, 0.05)
    #: Entry notional ~ Pareto(size_min_usd, alpha), truncated at size_max_usd (USDT).
    size_min_usd: float = 1_000.0
    size_tail_alpha: float = 1.5
    size_max_usd: float = 2_500_000.0
    #: Larger accounts use less leverage: the drawn leverage is scaled by (notional / size_min_usd)^−exponent
    #: and floored to an integer >= 2 (an assumption; Binance's tiers cap leverage in the same direction).
    leverage_size_exponent: float = 0.5
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
    #: The drawn hold applies at this leverage; a position at leverage L plans (reference / L)^exponent of it.
    hold_reference_leverage: float = 10.0
    hold_leverage_exponent: float = 1.0
    #: Take-profit at a PnL of this median multiple of the margin (log-sd tp_sigma).
    take_profit_margin_multiple: float = 0.8
    tp_sigma: float = 0.7
    stop_loss_share: float = 0.25
    #: Stop-loss at a loss of U(lo, hi) of the margin; dropped when it would sit beyond the liquidation price.
    stop_loss_margin_range: tuple[float, float] = (0.3, 0.85)
    #: Scalpers: small, short-lived, high-leverage isolated positions opened at the mark, arriving with the
    #: same activity as the other openers (scalpers_per_position of them per other opener). docs/simulator.md.
    scalpers_per_position: float = 0.4
    scalper_leverages: tuple[float, ...] = (75, 100, 125, 150)
    scalper_leverage_weights: tuple[float, ...] = (0.2, 0.3, 0.3, 0.2)
    scalper_size_min_usd: float = 200.0
    scalper_size_tail_alpha: float = 2.0
    scalper_size_max_usd: float = 50_000.0
    scalper_median_hold_minutes: float = 60.0
    scalper_hold_sigma: float = 1.0
    regime_long_probs: tuple[float, ...] = (0.46, 0.54, 0.62)
    regime_drifts_per_day: tuple[float, ...] = (-0.004, 0.0, 0.004)
    regime_mean_hours: float = 36.0
    #: Probability that a speculative opener takes liquidity; 0.5 = opens carry no order-flow signal.
    taker_open_share: float = 0.7
    taker_close_share: float = 0.5
    #: Mark log-displacement per unit of (liquidated notional / open interest), added the next minute: a
    #: share `impact_permanent_share` stays (price discovery), the rest decays with `impact_half_life_minutes`
    #: (the book refills after a liquidation wick). docs/simulator.md gives the depth fact behind the size.
    liquidation_impact: float = 0.5
    max_impact_per_minute: float = 0.02
    impact_permanent_share: float = 1.0
    impact_half_life_minutes: float = 5.0
    # ---- providers ------------------------------------------------------------------------------
    market_makers: int = 12
    basis_traders: int = 8
    #: Basis traders' short target as a multiple of the expected speculative gross notional (a fixed capital
    #: allocation, expected_speculative_gross_usd), scaled by 1 + basis_funding_sensitivity · (F − I), clipped
    #: to [0, 2]. They hold most of the open interest's short side (docs/simulator.md).
    basis_share: float = 2.5
    basis_funding_sensitivity: float = 1_000.0
    #: A basis trader revisits its target on average every this many minutes and closes half the gap.
    basis_rebalance_minutes: float = 30.0
    #: Probability per minute that the two market makers with the most different inventories trade a
    #: third of the difference (inventory sharing).
    mm_rebalance_prob: float = 0.3
    #: Providers' capital as a multiple of the expected speculative gross notional (the market makers carry
    #: the long side of the basis trade: with basis_share 2.5 this keeps them near 2x effective leverage).
    provider_capital_multiple: float = 6.0
    # ---- funding --------------------------------------------------------------------------------
    funding_interval_hours: int = 8
    interest_rate: float = 0.0001
    #: Premium index P = premium_offset + premium_gain · (speculators' long − short) / gross + an AR(1) basis
    #: noise (stationary sd premium_noise, half-life premium_noise_half_life_hours) + white noise per 5-s
    #: sample (premium_sample_noise). docs/simulator.md gives the real facts behind each.
    premium_offset: float = -4.7e-4
    premium_gain: float = 6e-5
    premium_noise: float = 4e-5
    premium_noise_half_life_hours: float = 8.0
    premium_sample_noise: float = 5e-5
    funding_clamp: float = 0.0005
    funding_cap: float = 0.003
    #: Long propensity shift per unit of (funding - interest): traders lean against expensive funding.
    funding_sensitivity: float = 150.0
    # ---- noise traders and output ---------------------------------------------------------------
    #: Share of the traded notional from noise round trips (high-frequency traders, flat at every sample).
    noise_volume_share: float = 0.8
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
        if self.hold_reference_leverage <= 0 or self.hold_leverage_exponent < 0:
            raise ValueError("hold_reference_leverage must be > 0 and hold_leverage_exponent >= 0")
        if self.scalpers_per_position < 0:
            raise ValueError(f"scalpers_per_position must be >= 0, not {self.scalpers_per_position}")
        if len(self.scalper_leverages) != len(self.scalper_leverage_weights) or min(self.scalper_leverages) < 2:
            raise ValueError("scalper_leverages need one weight each and must be >= 2")
        if abs(sum(self.scalper_leverage_weights) - 1) > 1e-9 or min(self.scalper_leverage_weights) < 0:
            raise ValueError(f"scalper_leverage_weights must be >= 0 and sum to 1, not {sum(self.scalper_leverage_weights)}")
        if not 0 < self.scalper_size_min_usd < self.scalper_size_max_usd or self.scalper_size_tail_alpha <= 0:
            raise ValueError("need 0 < scalper_size_min_usd < scalper_size_max_usd and scalper_size_tail_alpha > 0")
        if self.scalper_median_hold_minutes <= 0 or self.scalper_hold_sigma < 0:
            raise ValueError("scalper_median_hold_minutes must be > 0 and scalper_hold_sigma >= 0")
        if self.leverage_size_exponent < 0:
            raise ValueError("leverage_size_exponent must be >= 0")
        if len(self.intraday_vol_profile) != 24 or min(self.intraday_vol_profile) <= 0:
            raise ValueError("intraday_vol_profile needs 24 positive multipliers, one per UTC hour")
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
        if not 0 <= self.impact_permanent_share <= 1:
            raise ValueError(f"impact_permanent_share must be in [0, 1], not {self.impact_permanent_share}")
        if self.premium_noise < 0 or self.premium_sample_noise < 0 or self.premium_noise_half_life_hours <= 0:
            raise ValueError("premium_noise and premium_sample_noise must be >= 0, premium_noise_half_life_hours > 0")
        if not 0 <= self.zip_level <= 9:
            raise ValueError("zip_level must be in 0..9")

    def initial_price(self, symbol: str) -> float:
        return dict(self.initial_prices).get(symbol, self.default_initial_price)

    def annual_vol(self, symbol: str) -> float:
        return dict(self.annual_vols).get(symbol, self.default_annual_vol)

    def expected_speculative_gross_usd(self) -> float:
        """Rough steady-state open speculative notional: opens/day × mean size × mean holding (days).

        Used only to size the providers' capital; the mean holding time is
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


def epoch_ms(day: dt.date) -> int:
    """UTC midnight of `day` in epoch milliseconds."""
    return (day - EPOCH).days * MS_PER_DAY
