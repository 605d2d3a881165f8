"""Project-wide settings and defaults: the one place where symbols, dates, paths and model parameters live.

Every value can be overridden with an environment variable (`LIQ_*`), read when the module is imported,
because Dagster partition definitions need the symbol list and the start date at load time.

The model's parameter classes (`ModelParams`, `FlowParams`, `FLOW`, `MODEL`) are defined in params.py and read
from here on first use (PEP 562): they are dataclasses, and a cold `liq heatmap` (standard library only,
docs/answer-files.md) starts about 10 ms of CPU faster without importing `dataclasses` and `inspect`.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections import namedtuple
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


class SymbolSpec(namedtuple("SymbolSpec", "symbol tick_size step_size fixed_bin_width_usd")):
    """Static contract facts for a USD-M perpetual (exchangeInfo, 2026-09): `fixed_bin_width_usd` is the absolute
    bin width offered as the design's fixed grid ($500 for BTC). Immutable (a named tuple, not a dataclass: see
    the module's docstring)."""

    __slots__ = ()


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


#: The variables `_model_from_env` reads.
MODEL_VARIABLES = ("LIQ_WINDOW_DAYS", "LIQ_BIN_MODE", "LIQ_HEATMAP_STEP_MINUTES", "LIQ_HEATMAP_HALF_LIFE_HOURS")


def _model_from_env():
    """ModelParams with the documented overrides: LIQ_WINDOW_DAYS, LIQ_BIN_MODE, LIQ_HEATMAP_STEP_MINUTES,
    LIQ_HEATMAP_HALF_LIFE_HOURS (empty = no decay). ConfigError (one line naming the variable) otherwise."""
    from liq_pipeline.params import ModelParams

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
    if any(_env(name, "") for name in MODEL_VARIABLES):  # unset, they are the defaults: nothing to check
        _model_from_env()


#: Names read from params.py on first use (see the module's docstring).
_PARAMS = ("ModelParams", "FlowParams", "FLOW")


def __getattr__(name: str):
    # MODEL is read lazily (PEP 562) so that importing this module never fails: a bad LIQ_* value raises its
    # ConfigError where it is used, and `liq` turns that into one line with exit code 2.
    if name == "MODEL":
        globals()["MODEL"] = params = _model_from_env()
        return params
    if name in _PARAMS:
        from liq_pipeline import params

        globals()[name] = value = getattr(params, name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
