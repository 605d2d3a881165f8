"""Project-wide settings and defaults: the one place where symbols, dates, paths and model parameters live.

Every value can be overridden with an environment variable (`LIQ_*`), read when the module is imported,
because Dagster partition definitions need the symbol list and the start date at load time.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")
#: First day of the simulated demo market and the default partition start.
DEFAULT_START_DATE = dt.date(2026, 1, 1)
#: Days the demo simulates: one calendar month (January 2026), its first week only warming up the volume
#: profile, so the one monthly report it writes covers the rest of the month (apps/demo.py).
DEMO_DAYS = 31
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


class ConfigError(ValueError):
    """A setting (an environment variable or a resource field) with a value that cannot be used. The message
    is one line that names the variable, the value and what is accepted. Retrying never helps."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(name: str, default: int, minimum: int | None = None, accepted: str = "") -> int:
    """An integer variable; ConfigError naming it when it is not a whole number (>= `minimum`)."""
    raw = _env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or (minimum is not None and value < minimum):
        what = accepted or (f"a whole number >= {minimum}" if minimum is not None else "a whole number")
        raise ConfigError(f"{name}={raw!r} is not valid: expected {what} (default {default})")
    return value


def env_float(name: str, default: float | None, accepted: str, positive: bool = False) -> float | None:
    """A number variable (empty = `default`); ConfigError naming it when unreadable, infinite or not > 0."""
    raw = _env(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (positive and value <= 0):
        raise ConfigError(f"{name}={raw!r} is not valid: expected {accepted}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """A variable that takes one of `choices`; ConfigError listing them otherwise."""
    value = _env(name, default)
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not valid: expected one of {', '.join(choices)} (default {default})")
    return value


#: Binance symbol names: upper-case letters and digits, optionally `_` and a delivery date (BTCUSDT_250627).
#: Nothing else, so a symbol can never be a path (`../x`), a URL part or SQL.
SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,30}(_[0-9]{6})?$")
_warned_symbols: set[str] = set()


def validate_symbol(symbol: str, variable: str = "LIQ_SYMBOLS") -> str:
    """`symbol` upper-cased if it has the exchange's pattern, else ConfigError naming `variable`."""
    upper = symbol.strip().upper()
    if not SYMBOL_RE.match(upper):
        raise ConfigError(f"{variable}: {symbol!r} is not a Binance symbol (expected upper-case letters and digits "
                          "like BTCUSDT or 1000PEPEUSDT, comma separated)")
    return upper


def configured_symbols() -> list[str]:
    """Symbols the partitions cover: `LIQ_SYMBOLS` (comma separated), default BTCUSDT and ETHUSDT.

    Each must match the exchange's symbol pattern (ConfigError otherwise). A symbol without bundled contract
    facts (SYMBOL_SPECS) is said once per process: it works if the archive has it, with default tick sizes.
    """
    raw = _env("LIQ_SYMBOLS", ",".join(DEFAULT_SYMBOLS))
    symbols = [validate_symbol(s) for s in raw.split(",") if s.strip()]
    if not symbols:
        raise ConfigError(f"LIQ_SYMBOLS={raw!r} is not valid: expected comma separated symbols like BTCUSDT,ETHUSDT")
    unknown = [s for s in symbols if s not in SYMBOL_SPECS and s not in _warned_symbols]
    if unknown:
        _warned_symbols.update(unknown)
        import logging  # here, not at module level: `liq heatmap` starts ~5 ms faster without it

        logging.getLogger("liq_pipeline").warning("LIQ_SYMBOLS: %s not among the symbols with bundled contract facts (%s); check the spelling: a "
                     "symbol the archive does not have fails its raw partitions with 'files not found'",
                     ", ".join(unknown), ", ".join(SYMBOL_SPECS))
    return symbols


def configured_start_date() -> dt.date:
    """First partition day: `LIQ_START_DATE` (YYYY-MM-DD), default 2026-01-01 (the simulator's first day)."""
    raw = _env("LIQ_START_DATE", DEFAULT_START_DATE.isoformat())
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"LIQ_START_DATE={raw!r} is not valid: expected a date like 2026-01-01") from None


def data_dir() -> Path:
    """Root of everything generated (`LIQ_DATA_DIR`, default ./data): archives, cache, warehouse, reports."""
    return Path(_env("LIQ_DATA_DIR", "data"))


def warehouse_path() -> Path:
    return Path(_env("LIQ_WAREHOUSE", str(data_dir() / "warehouse" / "liq.duckdb")))


STORAGE_KINDS = ("duckdb", "parquet")


def storage() -> str:
    """`LIQ_STORAGE`: `duckdb` (default, one file, one writer) or `parquet` (a file per partition)."""
    return env_choice("LIQ_STORAGE", "duckdb", STORAGE_KINDS)


def parquet_root() -> str:
    """`LIQ_PARQUET_ROOT`: a folder or an object-store URL (s3://...); default <data dir>/parquet."""
    return _env("LIQ_PARQUET_ROOT", str(data_dir() / "parquet"))


def max_concurrent_partitions() -> int:
    """`LIQ_MAX_CONCURRENT`: processes of the multiprocess executor in the parquet mode (default 2)."""
    return env_int("LIQ_MAX_CONCURRENT", 2, minimum=1)


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
    LIQ_HEATMAP_HALF_LIFE_HOURS (empty = no decay). ConfigError (one line naming the variable) otherwise."""
    defaults = ModelParams()
    step = env_int("LIQ_HEATMAP_STEP_MINUTES", defaults.heatmap_step_minutes, minimum=1,
                   accepted="a whole number of minutes that divides a day (1, 5, 15, 60, ...)")
    if 1440 % step:
        raise ConfigError(f"LIQ_HEATMAP_STEP_MINUTES={step} is not valid: expected a whole number of minutes that "
                          "divides a day (1, 5, 15, 60, ...)")
    return ModelParams(
        window_days=env_int("LIQ_WINDOW_DAYS", defaults.window_days, minimum=1,
                            accepted="a whole number of days >= 1"),
        bin_mode=env_choice("LIQ_BIN_MODE", defaults.bin_mode, ("relative", "fixed")),
        heatmap_step_minutes=step,
        heatmap_half_life_hours=env_float("LIQ_HEATMAP_HALF_LIFE_HOURS", None, positive=True,
                                          accepted="a positive number of hours, or empty for no decay"),
    )


@dataclass(frozen=True)
class FlowParams:
    """Priors and settings of the `flow` variant (model/flow.py), recorded in asset metadata.

    Each prior is a documented assumption; the leverage mix and the leveraged share per side are
    re-learned every day from public liquidations when there are any (model.flow_parameters).
    """

    #: Leverage buckets up to the bracket maximum (125x on BTCUSDT; capped per size by the table). The lowest two
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
#: Values of the market source's variables (read by resources.default_resources).
SOURCE_KINDS = ("simulated", "mirror", "binance")
PROFILE_SOURCES = ("aggTrades", "klines")


def require_checksum() -> bool:
    """`LIQ_REQUIRE_CHECKSUM=1`: refuse archive files without a .CHECKSUM sidecar (default 0: warn)."""
    return env_choice("LIQ_REQUIRE_CHECKSUM", "0", ("0", "1")) == "1"


#: Largest CSV a daily archive zip may expand to, in MiB: a BTCUSDT aggTrades day is about 110 MB of CSV
#: (binance-data.md §4, "several times larger" on volatile days), so 2 GiB leaves a wide margin. Monthly
#: files may expand to 31 times this.
DEFAULT_MAX_CSV_MB = 2048
#: Largest compression ratio (CSV bytes per zipped byte) of a member larger than ZIP_RATIO_FLOOR_BYTES: the
#: archive's CSVs compress about 2.5-5 times (binance-data.md §4: ≈60-66 B of CSV per ≈13 B zipped), a zip
#: bomb of NUL bytes about 1,000 times.
DEFAULT_MAX_ZIP_RATIO = 50.0
#: Below this size a member is harmless whatever its ratio (tiny files of repeated rows compress well).
ZIP_RATIO_FLOOR_BYTES = 16 << 20


def archive_limits() -> tuple[int, float]:
    """(largest CSV of a daily file in bytes, largest compression ratio), from LIQ_MAX_CSV_MB and
    LIQ_MAX_ZIP_RATIO; ConfigError naming the variable when unusable."""
    mib = env_int("LIQ_MAX_CSV_MB", DEFAULT_MAX_CSV_MB, minimum=1, accepted="a whole number of MiB >= 1")
    ratio = env_float("LIQ_MAX_ZIP_RATIO", DEFAULT_MAX_ZIP_RATIO, "a number > 1, e.g. 50", positive=True)
    if ratio is None or ratio <= 1:
        raise ConfigError(f"LIQ_MAX_ZIP_RATIO={ratio!r} is not valid: expected a number > 1, e.g. 50")
    return mib << 20, float(ratio)


def validate_environment() -> None:
    """Read every LIQ_* setting once so that a bad one fails at start with its one-line ConfigError, before any
    work (the `liq` command calls this first; Dagster reads the same settings when it loads the definitions)."""
    configured_symbols()
    configured_start_date()
    storage()
    max_concurrent_partitions()
    env_choice("LIQ_SOURCE", "simulated", SOURCE_KINDS)
    env_choice("LIQ_KLINE_INTERVAL", "1m", KLINE_INTERVALS)
    env_choice("LIQ_MARK_KLINE_INTERVAL", "1m", KLINE_INTERVALS)
    env_choice("LIQ_PROFILE_SOURCE", "aggTrades", PROFILE_SOURCES)
    require_checksum()
    archive_limits()
    if env_choice("LIQ_SOURCE", "simulated", SOURCE_KINDS) == "mirror" and not _env("LIQ_MIRROR_DIR", ""):
        raise ConfigError("LIQ_SOURCE=mirror needs LIQ_MIRROR_DIR: the folder that contains data/futures/um/...")
    _model_from_env()


def __getattr__(name: str):
    # MODEL is read lazily (PEP 562) so that importing this module never fails: a bad LIQ_* value raises its
    # ConfigError where it is used, and `liq` turns that into one line with exit code 2.
    if name == "MODEL":
        globals()["MODEL"] = params = _model_from_env()
        return params
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
