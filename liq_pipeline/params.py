"""The model's parameters: `ModelParams` and `FlowParams` with their defaults. `config` re-exports them
(`config.MODEL`, `config.FLOW`, `config.ModelParams`, `config.FlowParams`, read on first use), so the one
place to look for a setting stays config.py; they live here because `dataclasses` costs about 10 ms of CPU
to import, and `liq heatmap` from the answer files needs none of them (docs/answer-files.md, "Cost").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelParams:
    """Default parameters of the position model (liquidation-math.md §8), recorded in asset metadata."""

    window_days: int = 30
    #: Relative bin width of the default log-price grid (0.001 = 0.1 %).
    bin_rel_width: float = 0.001
    #: "relative" (log grid, same relative width at every price) or "fixed" (SymbolSpec.fixed_bin_width_usd).
    bin_mode: str = "relative"
    #: Leverage mix: the only published weighting over the seed's list ("academic" 20/35/25/15/5).
    leverages: tuple[float, ...] = (5.0, 10.0, 20.0, 50.0, 100.0)
    leverage_weights: tuple[float, ...] = (0.20, 0.35, 0.25, 0.15, 0.05)
    ofi_gain: float = 1.5
    ofi_amplitude: float = 0.35
    funding_threshold: float = 0.0001
    funding_gain: float = 0.2
    oi_delta_threshold: float = 0.05
    oi_delta_band: float = 0.05
    oi_delta_gain: float = 0.5
    #: Number of position-size buckets drawn from the day's trade-size distribution (tier selection).
    size_buckets: int = 5
    heatmap_step_minutes: int = 15
    #: Half-life of unconsumed heatmap levels in hours; None = no decay (the default).
    heatmap_half_life_hours: float | None = None


@dataclass(frozen=True)
class FlowParams:
    """Priors and settings of the `flow` variant (model/flow.py), recorded in asset metadata.

    Each prior is a documented assumption; the leverage mix and the leveraged share per side are
    re-learned every day from public liquidations when there are any (model.flow_parameters).
    """

    #: Leverage buckets up to 125x (capped per size by the table; the BTCUSDT table in force since 2025-08-19 allows
    #: 150x in its first tier: a top bucket at 150x was measured in issue 26 round 7, docs/model-v3.md, and lowered
    #: the real partial ρ, so the grid keeps 125x). The lowest two
    #: (1.5x: about 1.1-2.1x, 3x: 2.1-3.9x) hold the open interest that is not near liquidation: low leverage,
    #: cross-margin accounts (leverage on the whole balance) and hedged holders; public liquidations never reach
    #: them, so their share is the prior's where liquidations are public and they are flagged (model/leverage_prior.py).
    leverages: tuple[float, ...] = (1.5, 3.0, 5.0, 10.0, 20.0, 50.0, 75.0, 125.0)
    #: Prior mix over `leverages` at open (weights sum to 1), derived by model/leverage_prior.prior_weights from
    #: real facts (a unit test recomputes it): the leveraged buckets keep `prior_leveraged_shape` and hold the
    #: share s* of the book that liquidates the real Binance BTCUSDT
    #: intensity, 0.19 % of OI a day (`prior_liquidation_intensity`), at a daily vol of 2.6 %
    #: (`prior_daily_vol`) and the prior half-life's mean life (16 h / ln 2 = 23 h): s* = 1.19 %. The rest,
    #: 98.8 %, is split evenly over the 1.5x and 3x buckets (no public fact splits them).
    prior_weights: tuple[float, ...] = (0.494066, 0.494066, 0.002193, 0.003483, 0.003096, 0.001806, 0.000774,
                                        0.000516)
    #: The lowest buckets that hold the rest of the book (model/leverage_prior.fit_with_low_end).
    low_leverage_buckets: int = 2
    #: The retail shape of the leveraged buckets (5x ... 125x) in `prior_weights`: heavy at 10-20x with a tail to
    #: the maximum (an assumption, the previous prior's shape).
    prior_leveraged_shape: tuple[float, ...] = (0.17, 0.27, 0.24, 0.14, 0.06, 0.04)
    #: Real facts behind `prior_weights`: Binance-only BTCUSDT liquidations, fraction of OI a day (the brief's
    #: domain facts), and the daily sd of BTC log returns (annualised 50 %; the development window's hourly
    #: returns give 48 %, its daily 55 %).
    prior_liquidation_intensity: float = 0.0019
    prior_daily_vol: float = 0.026
    #: Each leverage bucket stands for the leverages between the geometric midpoints of its neighbours (the
    #: lowest as far below itself as its upper edge is above, the highest up to itself), drawn at this many
    #: log-spaced points with equal shares of the bucket: traders pick any whole leverage, not seven values,
    #: and a comb of seven liquidation distances leaves empty bands between them (0.4 % / 0.9 % / 1.6 % from
    #: the entry at 125x / 75x / 50x). The mix is still learned per bucket. 1 = the bucket's value alone.
    leverage_points: int = 3
    #: Book turnover: gross closes ≈ ln2 / half-life of the book per hour (positions live hours, not weeks).
    half_life_hours: float = 16.0
    #: Closing hazard ∝ (leverage / 10)^exponent beyond liquidation. 0: leverage shortens a position's life
    #: only through its own liquidation price (measured on the dev market, seed 7: 0.5 cut the overlap with
    #: the true map from 0.46 to 0.38, 1.0 to 0.28, because it emptied the book near the mark).
    leverage_hazard_exponent: float = 0.0
    #: Closing hazard ∝ 1 / (1 + age / age_scale): young positions churn more than old ones.
    age_hazard_hours: float = 12.0
    #: Cohorts older than this leave the book. Not 7 days: the hazard falls with age, so old cohorts are the
    #: ones that survive (a 7-day cut dropped 15 % of the open notional in the offline diagnosis).
    max_age_days: int = 30
    #: Half-life (h) of every cell's notional, None = no decay: the seed rules' LIQ_HEATMAP_HALF_LIFE_HOURS
    #: (model.flow.params_for sets it for the variants that live until crossed).
    decay_half_life_hours: float | None = None
    #: Cells older than this are merged per open day (and funding paid) instead of per open hour.
    merge_after_hours: float = 48.0
    #: Position-size buckets (notional-weighted quantiles of the day's trades): tier and leverage cap.
    size_buckets: int = 3
    #: Trailing window of public liquidations the mix and leveraged share are fitted on.
    calibration_days: int = 7
    #: Ridge weight pulling the fitted mix towards the prior (relative to the data's own scale).
    ridge: float = 0.5
    #: Leveraged share of the book per side when no public liquidations exist.
    prior_leveraged_share: float = 1.0
    #: Candidate half-lives (h) of the survival fit (model/survival.py): each runs its own book beside the main
    #: one, and their misfits to the public liquidations of the trailing window give the likelihood of the
    #: posterior over log H. A factor 3 apart, from about the volume floor (12 h; the real window's volume is
    #: 1.6x OI a day: H >= 10.6 h) to the long lives the simulator's overlap kept favouring (108 h). Three
    #: candidates: each costs one more engine run per symbol-day.
    survival_candidates: tuple[float, ...] = (12.0, 36.0, 108.0)
    #: A candidate book counts only once its oldest cell is this many days old (a cold book fills from
    #: turnover, faster at short H, which would favour short candidates).
    survival_warm_days: float = 3.0
    #: The fit needs this many warm days and hours with public liquidations in the window; else the prior H, τ.
    survival_min_days: int = 3
    survival_min_hours: int = 12
    #: Prior of log H: Normal(log half_life_hours, this sd): a factor 3 at one sd (an assumption: positions
    #: live hours to days), truncated below at the day's volume floor.
    survival_prior_log_sd: float = 1.0986
    #: The posterior's H is marked "learned" when the data removed at least this share of the prior's variance.
    survival_min_information: float = 0.5


FLOW = FlowParams()
