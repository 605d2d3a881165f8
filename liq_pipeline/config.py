"""Project-wide settings and defaults: the one place where symbols, dates, paths and model parameters live.

Every value can be overridden with an environment variable (`LIQ_*`), read when the module is imported,
because Dagster partition definitions need the symbol list and the start date at load time.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")
#: First day of the simulated demo market and the default partition start.
DEFAULT_START_DATE = dt.date(2026, 1, 1)
BINANCE_ARCHIVE_URL = "https://data.binance.vision"
BINANCE_FAPI_URL = "https://fapi.binance.com"
KLINE_INTERVALS = ("1m", "5m", "15m", "1h")
KLINE_INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}


@dataclass(frozen=True)
class SymbolSpec:
    """Static contract facts for a USD-M perpetual (exchangeInfo, 2026-09)."""

    symbol: str
    tick_size: float
    step_size: float
    #: Absolute bin width offered as the design's fixed grid ($500 for BTC).
    fixed_bin_width_usd: float


SYMBOL_SPECS: dict[str, SymbolSpec] = {
    "BTCUSDT": SymbolSpec("BTCUSDT", tick_size=0.1, step_size=0.001, fixed_bin_width_usd=500.0),
    "ETHUSDT": SymbolSpec("ETHUSDT", tick_size=0.01, step_size=0.001, fixed_bin_width_usd=25.0),
}


def symbol_spec(symbol: str) -> SymbolSpec:
    """Contract facts for `symbol`; unknown symbols get a 0.01 tick and a 0.1%-of-100 fixed grid."""
    return SYMBOL_SPECS.get(symbol, SymbolSpec(symbol, tick_size=0.01, step_size=0.001, fixed_bin_width_usd=1.0))


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def configured_symbols() -> list[str]:
    """Symbols the partitions cover: `LIQ_SYMBOLS` (comma separated), default BTCUSDT and ETHUSDT."""
    raw = _env("LIQ_SYMBOLS", ",".join(DEFAULT_SYMBOLS))
    return [s.strip().upper() for s in raw.split(",") if s.strip()]


def configured_start_date() -> dt.date:
    """First partition day: `LIQ_START_DATE` (YYYY-MM-DD), default 2026-01-01 (the simulator's first day)."""
    return dt.date.fromisoformat(_env("LIQ_START_DATE", DEFAULT_START_DATE.isoformat()))


def data_dir() -> Path:
    """Root of everything generated (`LIQ_DATA_DIR`, default ./data): archives, cache, warehouse, reports."""
    return Path(_env("LIQ_DATA_DIR", "data"))


def warehouse_path() -> Path:
    return Path(_env("LIQ_WAREHOUSE", str(data_dir() / "warehouse" / "liq.duckdb")))


STORAGE_KINDS = ("duckdb", "parquet")


def storage() -> str:
    """`LIQ_STORAGE`: `duckdb` (default, one file, one writer) or `parquet` (a file per partition)."""
    kind = _env("LIQ_STORAGE", "duckdb")
    if kind not in STORAGE_KINDS:
        raise ValueError(f"LIQ_STORAGE must be one of {STORAGE_KINDS}, got {kind!r}")
    return kind


def parquet_root() -> str:
    """`LIQ_PARQUET_ROOT`: a folder or an object-store URL (s3://...); default <data dir>/parquet."""
    return _env("LIQ_PARQUET_ROOT", str(data_dir() / "parquet"))


def max_concurrent_partitions() -> int:
    """`LIQ_MAX_CONCURRENT`: processes of the multiprocess executor in the parquet mode (default 2)."""
    return int(_env("LIQ_MAX_CONCURRENT", "2"))


def sim_archive_dir() -> Path:
    return Path(_env("LIQ_SIM_DIR", str(data_dir() / "archive-sim")))


def reports_dir() -> Path:
    return data_dir() / "reports"


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


def _model_from_env() -> ModelParams:
    """ModelParams with the documented overrides: LIQ_WINDOW_DAYS, LIQ_BIN_MODE, LIQ_HEATMAP_STEP_MINUTES,
    LIQ_HEATMAP_HALF_LIFE_HOURS (empty = no decay)."""
    defaults = ModelParams()
    half_life = _env("LIQ_HEATMAP_HALF_LIFE_HOURS", "")
    params = ModelParams(
        window_days=int(_env("LIQ_WINDOW_DAYS", str(defaults.window_days))),
        bin_mode=_env("LIQ_BIN_MODE", defaults.bin_mode),
        heatmap_step_minutes=int(_env("LIQ_HEATMAP_STEP_MINUTES", str(defaults.heatmap_step_minutes))),
        heatmap_half_life_hours=float(half_life) if half_life else None,
    )
    if params.window_days < 1:
        raise ValueError(f"LIQ_WINDOW_DAYS must be >= 1, got {params.window_days}")
    if params.bin_mode not in ("relative", "fixed"):
        raise ValueError(f"LIQ_BIN_MODE must be 'relative' or 'fixed', got {params.bin_mode!r}")
    if params.heatmap_step_minutes < 1 or 1440 % params.heatmap_step_minutes:
        raise ValueError(f"LIQ_HEATMAP_STEP_MINUTES must divide a day (1, 5, 15, 60, ...), got {params.heatmap_step_minutes}")
    if params.heatmap_half_life_hours is not None and params.heatmap_half_life_hours <= 0:
        raise ValueError("LIQ_HEATMAP_HALF_LIFE_HOURS must be positive (leave it empty for no decay)")
    return params


MODEL = _model_from_env()


@dataclass(frozen=True)
class FlowParams:
    """Priors and settings of the `flow` variant (model/flow.py), recorded in asset metadata.

    Each prior is a documented assumption; the leverage mix and the leveraged share per side are
    re-learned every day from public liquidations when there are any (model.flow_parameters).
    """

    #: Leverage buckets up to the bracket maximum (125x on BTCUSDT; capped per size by the table).
    leverages: tuple[float, ...] = (2.0, 5.0, 10.0, 20.0, 50.0, 75.0, 125.0)
    #: Prior mix over `leverages` at open (weights sum to 1): retail-heavy at 10-20x with a tail to the max.
    prior_weights: tuple[float, ...] = (0.08, 0.17, 0.27, 0.24, 0.14, 0.06, 0.04)
    #: Book turnover: gross closes ≈ ln2 / half-life of the book per hour (positions live hours, not weeks).
    half_life_hours: float = 16.0
    #: Closing hazard ∝ (leverage / 10)^exponent beyond liquidation. 0: leverage shortens a position's life
    #: only through its own liquidation price (measured on the dev market, seed 7: 0.5 cut the overlap with
    #: the true map from 0.46 to 0.38, 1.0 to 0.28, because it emptied the book near the mark).
    leverage_hazard_exponent: float = 0.0
    #: Closing hazard ∝ 1 / (1 + age / age_scale): young positions churn more than old ones.
    age_hazard_hours: float = 12.0
    #: Cohorts older than this leave the book (their survival is negligible under the hazard above).
    max_age_days: int = 7
    #: Position-size buckets (notional-weighted quantiles of the day's trades): tier and leverage cap.
    size_buckets: int = 3
    #: Trailing window of public liquidations the mix and leveraged share are fitted on.
    calibration_days: int = 7
    #: Ridge weight pulling the fitted mix towards the prior (relative to the data's own scale).
    ridge: float = 0.5
    #: Leveraged share of the book per side when no public liquidations exist.
    prior_leveraged_share: float = 1.0


FLOW = FlowParams()
SEED_VARIANTS = ("volume_5050", "ofi", "funding", "hybrid")
#: The seed's four variants and `flow` (the cohort model of model/flow.py).
VARIANTS = SEED_VARIANTS + ("flow",)
#: The variant the CLI, the pictures and the zones summary show unless told otherwise.
DEFAULT_VARIANT = "hybrid"
