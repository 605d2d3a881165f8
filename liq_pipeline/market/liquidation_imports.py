"""Import realized liquidations supplied by a user, for the backtest of the heatmap (issue 6).

Three file formats, detected from the content:
- `forceorder`: JSON lines of Binance `!forceOrder@arr` payloads (`{"e":"forceOrder","E":..,"o":{..}}`, also
  the combined-stream wrapper), parsed by the live recorder's own parser → `raw.realized_liquidations`;
- `snapshot`: the retired Binance liquidationSnapshot CSV (binance-data.md §3.8; every row appears twice in
  real files, so exact duplicates are dropped; side SELL = a long was liquidated) → `raw.realized_liquidations`;
- `bars`: per-bar totals as commercial providers export them → `raw.realized_liquidation_bars`. Column
  names are matched after lower-casing and dropping everything but letters and digits, so `long_usd`,
  `longUsd` and `Longs (USD)` are one name: `bar_start_utc,bar_start_ms,long_usd,short_usd`, Coinglass
  exports (`timestamp,datetime_utc,longUsd,shortUsd,totalUsd`; API fields `t`/`time`, `longVolUsd`,
  `aggregated_long_liquidation_usd`, ...), ISO or epoch bar starts, an optional `symbol` column.
Files without a symbol (per-bar totals, snapshot CSVs not named after one) take the one configured symbol
(`LIQ_SYMBOLS`) when there is exactly one; otherwise `--symbol` says which.
Each file is stored under `source = "file:<file name>"`. An import replaces, per symbol it holds, the rows of
the same source and symbol within its own time span, and nothing else: re-importing a file (or rescanning the
drop folder) replaces exactly its rows; an import of another symbol, or a same-named file of another period,
never deletes earlier rows; a file that yields no rows replaces nothing and is an error.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.config import SYMBOL_RE
from liq_pipeline.market.formats import LIQUIDATION_SNAPSHOT_COLUMNS
from liq_pipeline.market.recorder import MalformedEvent, events_frame, parse_force_orders
from liq_pipeline.warehouse.realized_liquidations import BARS_TABLE, EVENTS_TABLE, replace_source

FORMATS = ("auto", "forceorder", "snapshot", "bars")
#: Column names accepted for the per-bar totals, normalised by `column_key` (lower case, letters and digits
#: only); the first match in this order wins. Every bar-start column present is read and must agree.
BAR_ALIASES = {
    "timestamp": ("barstartms", "barstartutc", "barstart", "barstarttime", "timestamp", "time", "t", "ts",
                  "createtime", "starttime", "opentime", "datetimeutc", "datetime", "date"),
    "long_usd": ("longusd", "long", "longs", "longsusd", "longliquidationusd", "aggregatedlongliquidationusd",
                 "longvolusd", "longvol", "longliquidation", "longliquidations"),
    "short_usd": ("shortusd", "short", "shorts", "shortsusd", "shortliquidationusd", "aggregatedshortliquidationusd",
                  "shortvolusd", "shortvol", "shortliquidation", "shortliquidations"),
}
#: Keys of `DataFrame.attrs` through which read_liquidation_bars reports the bar width and what it understood.
ATTR_BAR_SECONDS, ATTR_UNDERSTOOD = "bar_seconds", "understood"
_SNAPSHOT_NAME = re.compile(r"^([A-Z0-9]+)-liquidationSnapshot-")


def column_key(name: str) -> str:
    """A column name reduced to lower-case letters and digits: `long_usd`, `longUsd`, `Long USD` → `longusd`."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


class LiquidationImportError(ValueError):
    """A user-supplied liquidation file that cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class ImportResult:
    path: str
    format: str
    table: str
    source: str
    rows: int
    symbols: tuple[str, ...]
    first_time: dt.datetime | None
    last_time: dt.datetime | None
    #: Width of a bar of per-bar totals (None for events).
    bar_seconds: int | None = None
    #: What the reader understood: columns used, symbol taken from where, bar width inferred or given.
    understood: tuple[str, ...] = ()
    #: Rows of earlier imports (same source, symbol and time span) that this import replaced.
    replaced: int = 0


def source_for(path: Path) -> str:
    """Source tag of an imported file: `file:<name>` (the name, not the path, so a moved folder still matches)."""
    return f"file:{Path(path).name}"


def detect_format(path: Path) -> str:
    """`forceorder`, `snapshot` or `bars`, from the first non-blank line of the file."""
    path = Path(path)
    with path.open("r", encoding="utf-8-sig", errors="replace") as fh:
        first = next((line.strip() for line in fh if line.strip()), "")
    if not first:
        raise LiquidationImportError(f"{path}: empty file")
    if first.startswith(("{", "[")):
        return "forceorder"
    cells = [c.strip().strip('"').lower() for c in first.split(",")]
    if cells[: len(LIQUIDATION_SNAPSHOT_COLUMNS)] == list(LIQUIDATION_SNAPSHOT_COLUMNS):
        return "snapshot"
    # Header-less snapshot files start with an epoch and have exactly the ten snapshot columns.
    if len(cells) == len(LIQUIDATION_SNAPSHOT_COLUMNS) and cells[0].isdigit() and cells[1] in ("buy", "sell"):
        return "snapshot"
    names = {column_key(c) for c in cells}
    if any(a in names for a in BAR_ALIASES["long_usd"]) and any(a in names for a in BAR_ALIASES["short_usd"]):
        return "bars"
    raise LiquidationImportError(
        f"{path}: unknown liquidation file format (first line {first[:80]!r}); expected forceOrder JSON lines, "
        "a liquidationSnapshot CSV or per-bar totals (a bar start and long and short USD columns, e.g. "
        "bar_start_utc,long_usd,short_usd or Coinglass timestamp,longUsd,shortUsd)"
    )


def default_symbol(path: Path, configured: list[str] | None = None) -> str:
    """The symbol of a file that names none: the one configured symbol (LIQ_SYMBOLS), else a clear error."""
    from liq_pipeline.config import configured_symbols

    configured = configured_symbols() if configured is None else configured
    if len(configured) == 1:
        return configured[0]
    raise LiquidationImportError(
        f"{path}: the file names no symbol and {len(configured)} symbols are configured "
        f"({', '.join(configured)}); pass --symbol")


def _epoch_or_text_to_utc(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Naive-UTC datetimes from epoch numbers (s, ms or µs by magnitude) or date strings (offset → UTC)."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        n = numeric.astype("float64")
        bad = ~np.isfinite(n) | (n.abs() >= 1e17)  # beyond any epoch in µs: not a time
        if bad.any():
            raise LiquidationImportError(f"{path}: column {column!r} holds {values[bad].iloc[0]!r} in data row "
                                         f"{int(np.flatnonzero(bad.to_numpy())[0]) + 1}: not an epoch time")
        # Magnitude decides the unit (binance-data.md: > 1e14 is µs); below 1e11 it is seconds (year < 5138).
        ms = np.where(n > 1e14, n / 1_000, np.where(n > 1e11, n, n * 1_000))
        return pd.Series(pd.to_datetime(np.round(ms).astype("int64"), unit="ms"), index=values.index)
    try:
        parsed = pd.to_datetime(values, utc=True, format="mixed")
    except (ValueError, TypeError) as e:
        raise LiquidationImportError(f"{path}: column {column!r} holds neither epochs nor dates ({e})") from e
    return parsed.dt.tz_convert(None).astype("datetime64[ms]")


def read_force_orders(path: Path, symbol: str | None = None) -> pd.DataFrame:
    """Rows of raw.realized_liquidations from a file of forceOrder JSON lines (one message per line).

    Uses the live recorder's parser, so a file recorded elsewhere lands exactly like the live stream.
    Only `symbol` is kept when given. Duplicate events (same symbol, trade time, side, price, quantity) once.
    """
    path = Path(path)
    events = []
    with path.open("r", encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    events.extend(parse_force_orders(line))
                except MalformedEvent as e:
                    raise LiquidationImportError(f"{path}, line {number}: {e}") from e
    frame = events_frame(events, source=source_for(path))
    if symbol:
        frame = frame[frame["symbol"] == symbol]
    return frame.drop_duplicates(["symbol", "trade_time", "side", "price", "quantity"], ignore_index=True)


def read_liquidation_snapshot(path: Path, symbol: str | None = None,
                              configured: list[str] | None = None) -> pd.DataFrame:
    """Rows of raw.realized_liquidations from a Binance liquidationSnapshot CSV (with or without header).

    The file has no symbol column: `symbol`, else the `<SYMBOL>-liquidationSnapshot-` file name, else the
    one configured symbol.
    Exact duplicate rows are dropped (every row appears twice in Binance's files). side SELL = long
    liquidated. quantity = accumulated fill (original quantity when 0); notional = average price ×
    quantity, the order price when the average is 0.
    """
    path = Path(path)
    match = _SNAPSHOT_NAME.match(path.name)
    symbol = symbol or (match.group(1) if match else None)
    if not symbol:
        try:
            symbol = default_symbol(path, configured)
        except LiquidationImportError as e:
            raise LiquidationImportError(f"{e} (or keep the Binance file name "
                                         "<SYMBOL>-liquidationSnapshot-<date>.csv)") from None
    has_header = detect_header(path)
    raw = pd.read_csv(path, header=0 if has_header else None, names=list(LIQUIDATION_SNAPSHOT_COLUMNS),
                      dtype=str, skip_blank_lines=True)
    raw = raw.drop_duplicates(ignore_index=True)
    side = raw["side"].str.strip().str.upper().map({"SELL": "long", "BUY": "short"})
    if side.isna().any():
        bad = raw.loc[side.isna(), "side"].iloc[0]
        raise LiquidationImportError(f"{path}: side must be BUY or SELL, found {bad!r}")
    nums = {c: pd.to_numeric(raw[c], errors="coerce") for c in
            ("time", "price", "average_price", "original_quantity", "accumulated_fill_quantity")}
    for column in ("time", "price", "original_quantity"):
        if nums[column].isna().any():
            raise LiquidationImportError(f"{path}: non-numeric {column!r} in row {int(nums[column].isna().idxmax()) + 1}")
    qty = nums["accumulated_fill_quantity"].where(nums["accumulated_fill_quantity"] > 0, nums["original_quantity"])
    avg = nums["average_price"]
    fill_price = avg.where(avg > 0, nums["price"])
    trade_time = _epoch_or_text_to_utc(nums["time"], path, "time")
    return pd.DataFrame({
        "symbol": symbol, "day": trade_time.dt.floor("D").dt.date, "event_time": trade_time,
        "trade_time": trade_time, "side": side, "price": nums["price"].astype("float64"),
        "avg_price": avg.astype("float64"), "quantity": qty.astype("float64"),
        "notional_usd": (fill_price * qty).astype("float64"), "source": source_for(path),
    })


def detect_header(path: Path) -> bool:
    """True when the first line's first cell is not a number (binance-data.md: decide per file)."""
    with Path(path).open("r", encoding="utf-8-sig") as fh:
        first = next((line for line in fh if line.strip()), "")
    cell = first.split(",")[0].strip().strip('"')
    try:
        float(cell)
        return False
    except ValueError:
        return True


@dataclass(frozen=True)
class BarsRead:
    """Per-bar totals read from a file, and what the reader understood of it."""

    frame: pd.DataFrame
    bar_seconds: int
    understood: tuple[str, ...]


def _bar_symbols(raw: pd.DataFrame, keys: dict[str, str], path: Path, symbol: str | None,
                 configured: list[str] | None) -> tuple[pd.Series, str]:
    """Symbol per row and how it was found: a `symbol` column (a coin such as `BTC` becomes `BTCUSDT` when
    that is configured), else `symbol`, else the one configured symbol."""
    if "symbol" in keys:
        values = raw[keys["symbol"]].astype(str).str.strip().str.upper()
        from liq_pipeline.config import configured_symbols

        known = configured_symbols() if configured is None else configured
        coins = {v: f"{v}USDT" for v in values.unique() if v not in known and f"{v}USDT" in known}
        if coins:
            values = values.replace(coins)
            return values, "symbol column (" + ", ".join(f"{c} read as {p}" for c, p in coins.items()) + ")"
        return values, "symbol column"
    if symbol:
        return pd.Series(symbol, index=raw.index), f"{symbol} (--symbol)"
    only = default_symbol(path, configured)
    return pd.Series(only, index=raw.index), f"{only} (the one configured symbol)"


def read_bars(path: Path, symbol: str | None = None, bar_seconds: int | None = None,
              configured: list[str] | None = None) -> BarsRead:
    """Per-bar totals (bar start, long USD, short USD) from a CSV, with the bar width and what was understood.

    Columns are matched by `column_key` against BAR_ALIASES; when several bar-start columns are present
    (`bar_start_utc` and `bar_start_ms`, Coinglass `timestamp` and `datetime_utc`) each is parsed and they
    must name the same instants. A `symbol` column wins over `symbol`; without either, the one configured
    symbol. The bar width is `bar_seconds`, else the smallest spacing between consecutive bar starts
    (missing bars do not widen it), else one hour for a single bar.
    """
    path = Path(path)
    raw = pd.read_csv(path)
    keys: dict[str, str] = {}
    for c in raw.columns:
        keys.setdefault(column_key(c), c)
    cols: dict[str, str] = {}
    for target, aliases in BAR_ALIASES.items():
        found = next((keys[a] for a in aliases if a in keys), None)
        if found is None:
            raise LiquidationImportError(f"{path}: no {target} column among {', '.join(map(str, raw.columns))} "
                                         f"(accepted, ignoring case and punctuation: {', '.join(aliases)})")
        cols[target] = found
    if raw.empty:
        raise LiquidationImportError(f"{path}: header only, no bars")
    time_cols = [keys[a] for a in BAR_ALIASES["timestamp"] if a in keys]
    start = _epoch_or_text_to_utc(raw[cols["timestamp"]], path, cols["timestamp"])
    for other in time_cols[1:]:
        again = _epoch_or_text_to_utc(raw[other], path, other)
        differ = (again.to_numpy("datetime64[ms]") != start.to_numpy("datetime64[ms]"))
        if differ.any():
            row = int(np.argmax(differ))
            raise LiquidationImportError(
                f"{path}: bar-start columns {cols['timestamp']!r} and {other!r} disagree in data row {row + 1} "
                f"({raw[cols['timestamp']].iloc[row]!r} vs {raw[other].iloc[row]!r})")
    symbols, symbol_from = _bar_symbols(raw, keys, path, symbol, configured)
    amounts = {k: pd.to_numeric(raw[cols[k]], errors="coerce") for k in ("long_usd", "short_usd")}
    for k, v in amounts.items():
        if v.isna().any() or (v < 0).any():
            raise LiquidationImportError(f"{path}: column {cols[k]!r} must hold non-negative numbers of USD")
    steps = np.diff(np.unique(start.to_numpy("datetime64[ms]").astype(np.int64)))
    if bar_seconds is None:
        bar_ms = int(steps.min()) if steps.size else 3_600_000
        width_from = "smallest spacing of the bar starts" if steps.size else "one bar: assumed 1 h"
    else:
        bar_ms = int(bar_seconds) * 1000
        width_from = "--bar-seconds"
    _check_bar_width(path, bar_ms, steps, bar_seconds is not None)
    frame = pd.DataFrame({
        "symbol": symbols, "day": start.dt.floor("D").dt.date, "bar_start": start,
        "bar_end": start + pd.to_timedelta(bar_ms, unit="ms"),
        "long_usd": amounts["long_usd"].astype("float64"), "short_usd": amounts["short_usd"].astype("float64"),
        "source": source_for(path),
    })
    if symbol:
        frame = frame[frame["symbol"] == symbol]
    # A provider file can repeat a bar (overlapping exports): keep the last value of each bar.
    frame = frame.drop_duplicates(["symbol", "bar_start"], keep="last", ignore_index=True)
    understood = (
        f"bar start {' = '.join(map(repr, time_cols))}, longs {cols['long_usd']!r}, shorts {cols['short_usd']!r}",
        f"symbol: {symbol_from}",
        f"bar width {_duration(bar_ms)} ({width_from})",
    )
    return BarsRead(frame, bar_ms // 1000, understood)


#: The finest bars a provider exports: per-minute totals. Bars closer than this are events or a broken file.
MIN_BAR_MS = 60_000


def _check_bar_width(path: Path, bar_ms: int, steps: np.ndarray, declared: bool) -> None:
    """The bar width is whole seconds, at least MIN_BAR_MS, and every spacing of the bar starts is a whole
    number of bars (a declared width wider than the spacing would make bars overlap)."""
    source = "declared width (--bar-seconds)" if declared else "bar starts are"
    if bar_ms < MIN_BAR_MS or bar_ms % 1000:
        raise LiquidationImportError(
            f"{path}: {source} {_duration(bar_ms) if declared else f'{bar_ms / 1000:g} s apart'}: per-bar totals "
            f"must be whole seconds and at least {MIN_BAR_MS // 1000} s wide; nothing was imported from this file")
    uneven = steps[steps % bar_ms != 0] if steps.size else steps
    if uneven.size:
        raise LiquidationImportError(
            f"{path}: bar starts {uneven[0] / 1000:g} s apart do not fit bars {_duration(bar_ms)} wide "
            f"({'--bar-seconds' if declared else 'the smallest spacing'}); nothing was imported from this file")


def _duration(ms: int) -> str:
    if ms % 1000:
        return f"{ms / 1000:g} s"
    seconds = ms // 1000
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def read_liquidation_bars(path: Path, symbol: str | None = None, bar_seconds: int | None = None,
                          configured: list[str] | None = None) -> pd.DataFrame:
    """Rows of raw.realized_liquidation_bars from a CSV of per-bar totals (see `read_bars`); the bar width
    and what was understood ride along in `frame.attrs` (ATTR_BAR_SECONDS, ATTR_UNDERSTOOD)."""
    read = read_bars(path, symbol, bar_seconds, configured)
    frame = read.frame
    frame.attrs[ATTR_BAR_SECONDS] = read.bar_seconds
    frame.attrs[ATTR_UNDERSTOOD] = read.understood
    return frame


def read_liquidation_file(path: Path, fmt: str = "auto", symbol: str | None = None,
                          bar_seconds: int | None = None) -> tuple[str, str, pd.DataFrame]:
    """(format, target table, rows) of one user file; `bar_seconds` only applies to per-bar totals."""
    path = Path(path)
    if fmt not in FORMATS:
        raise LiquidationImportError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if not path.is_file():
        raise LiquidationImportError(f"{path}: no such file")
    fmt = detect_format(path) if fmt == "auto" else fmt
    try:
        if fmt == "forceorder":
            table, frame = EVENTS_TABLE, read_force_orders(path, symbol)
        elif fmt == "snapshot":
            table, frame = EVENTS_TABLE, read_liquidation_snapshot(path, symbol)
        else:
            table, frame = BARS_TABLE, read_liquidation_bars(path, symbol, bar_seconds)
    except LiquidationImportError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, KeyError, ValueError, TypeError,
            OverflowError) as e:  # ValueError covers pandas' OutOfBoundsDatetime (e.g. "T":99999999999999999)
        raise LiquidationImportError(f"{path}: cannot read as {fmt}: {type(e).__name__}: {e}") from e
    validate_rows(path, table, frame)
    return fmt, table, frame


#: Liquidation times outside [first USD-M listing year, now + 1 day] are corrupt cells, not data.
EARLIEST_TIME = pd.Timestamp("2019-01-01")


def _first_bad(path: Path, frame: pd.DataFrame, bad: pd.Series, column: str, rule: str) -> None:
    """LiquidationImportError naming the file, the column, the rule and the first offending row."""
    if not bad.any():
        return
    i = int(np.flatnonzero(bad.to_numpy())[0])
    row = frame.iloc[i]
    when = next((row[c] for c in ("trade_time", "bar_start") if c in frame.columns), None)
    raise LiquidationImportError(
        f"{path}: {int(bad.sum()):,} rows with {column} {rule}; the first is row {i + 1} ({column}={row[column]!r}"
        f"{f', time {when}' if when is not None else ''}); nothing was imported from this file"
    )


def validate_rows(path: Path, table: str, frame: pd.DataFrame) -> None:
    """Every field of the rows read from `path`, before any is stored: symbols of the exchange's pattern,
    known sides, times in a plausible range, finite positive prices and quantities, finite non-negative
    USD totals. Raises LiquidationImportError naming the file and the first bad row."""
    if frame.empty:
        return
    symbols = frame["symbol"].astype(str)
    _first_bad(path, frame, ~symbols.str.fullmatch(SYMBOL_RE.pattern.strip("^$")), "symbol",
               "that is not a Binance symbol")
    latest = pd.Timestamp.now(tz="UTC").tz_localize(None) + pd.Timedelta(days=1)
    time_col = "trade_time" if table == EVENTS_TABLE else "bar_start"
    times = pd.to_datetime(frame[time_col])
    _first_bad(path, frame, times.isna() | (times < EARLIEST_TIME) | (times > latest), time_col,
               f"outside {EARLIEST_TIME.date()} … tomorrow")
    if table == EVENTS_TABLE:
        _first_bad(path, frame, ~frame["side"].isin(["long", "short"]), "side", "other than long/short")
        for column in ("price", "quantity", "notional_usd"):
            values = pd.to_numeric(frame[column], errors="coerce")
            _first_bad(path, frame, ~(np.isfinite(values) & (values > 0)), column, "not a finite number > 0")
        avg = pd.to_numeric(frame["avg_price"], errors="coerce")
        _first_bad(path, frame, avg.notna() & ~(np.isfinite(avg) & (avg >= 0)), "avg_price",
                   "not a finite number >= 0")
    else:
        for column in ("long_usd", "short_usd"):
            values = pd.to_numeric(frame[column], errors="coerce")
            _first_bad(path, frame, ~(np.isfinite(values) & (values >= 0)), column, "not a finite number >= 0")


def import_liquidation_file(con: duckdb.DuckDBPyConnection, path: Path, fmt: str = "auto",
                            symbol: str | None = None, bar_seconds: int | None = None) -> ImportResult:
    """Read one user file and store it (replacing an earlier import of the same file name)."""
    path = Path(path)
    fmt, table, frame = read_liquidation_file(path, fmt, symbol, bar_seconds)
    source = source_for(path)
    if frame.empty:
        raise LiquidationImportError(
            f"{path}: no rows to import{f' for {symbol}' if symbol else ''} (the file holds "
            f"{_symbols_in(path, fmt)}); nothing was imported and nothing stored was replaced")
    rows, replaced = replace_source(con, table, source, frame)
    time_col = "trade_time" if table == EVENTS_TABLE else "bar_start"
    times = frame[time_col] if rows else pd.Series([], dtype="datetime64[ms]")
    return ImportResult(
        path=str(path), format=fmt, table=table, source=source, rows=rows,
        symbols=tuple(sorted(frame["symbol"].unique())) if rows else (),
        first_time=times.min().to_pydatetime() if rows else None,
        last_time=times.max().to_pydatetime() if rows else None,
        bar_seconds=frame.attrs.get(ATTR_BAR_SECONDS),
        understood=tuple(frame.attrs.get(ATTR_UNDERSTOOD, ())), replaced=replaced,
    )


def _symbols_in(path: Path, fmt: str) -> str:
    """The symbols a file holds when read without a symbol filter, for the message of an empty import."""
    try:
        _, _, everything = read_liquidation_file(path, fmt)
    except LiquidationImportError:
        return "no readable rows"
    names = sorted(everything["symbol"].unique()) if not everything.empty else []
    return ", ".join(names) if names else "no rows"


def import_liquidation_folder(con: duckdb.DuckDBPyConnection, folder: Path) -> tuple[list[ImportResult], list[str]]:
    """Import every visible file of `folder` (sorted by name). Returns (results, errors): a bad file is
    reported with its reason and does not stop the others."""
    folder = Path(folder)
    results, errors = [], []
    if not folder.is_dir():
        return results, errors
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            results.append(import_liquidation_file(con, path))
        except LiquidationImportError as e:
            errors.append(str(e))
    return results, errors
