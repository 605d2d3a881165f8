"""Parsers for Binance USD-M archive CSVs (binance-data.md §2-§3), as DuckDB SQL over the extracted file.

Each `*_select` function returns a SELECT statement producing exactly the columns of the matching raw
table (warehouse/schema.py), so an asset can hand it to `replace_partition`. Rules applied in SQL, never
per row in Python: header or none (decided per file from the first cell), epoch ms or µs (a value
> 1e14 is µs), case-insensitive booleans, empty cells as NULL, duplicated rows dropped on the natural
key, rows sorted on it (monthly aggTrades interleave id ranges).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from liq_pipeline.market.formats import COLUMNS, DATETIME_FIRST_KINDS, KLINE_KINDS


class MalformedArchiveFile(ValueError):
    """A CSV row that does not fit the documented format (names the file and the offending line)."""


#: DuckDB types used to read each kind; booleans and datetime strings are read as text and parsed in SQL.
_READ_TYPES: dict[str, dict[str, str]] = {
    "aggTrades": {
        "agg_trade_id": "BIGINT", "price": "DOUBLE", "quantity": "DOUBLE", "first_trade_id": "BIGINT",
        "last_trade_id": "BIGINT", "transact_time": "BIGINT", "is_buyer_maker": "VARCHAR",
    },
    "klines": {
        "open_time": "BIGINT", "open": "DOUBLE", "high": "DOUBLE", "low": "DOUBLE", "close": "DOUBLE",
        "volume": "DOUBLE", "close_time": "BIGINT", "quote_volume": "DOUBLE", "count": "BIGINT",
        "taker_buy_volume": "DOUBLE", "taker_buy_quote_volume": "DOUBLE", "ignore": "VARCHAR",
    },
    "metrics": {
        "create_time": "VARCHAR", "symbol": "VARCHAR", "sum_open_interest": "DOUBLE",
        "sum_open_interest_value": "DOUBLE", "count_toptrader_long_short_ratio": "DOUBLE",
        "sum_toptrader_long_short_ratio": "DOUBLE", "count_long_short_ratio": "DOUBLE",
        "sum_taker_long_short_vol_ratio": "DOUBLE",
    },
    "fundingRate": {"calc_time": "BIGINT", "funding_interval_hours": "INTEGER", "last_funding_rate": "DOUBLE"},
}

#: Cells a row cannot do without, per kind (CSV column names): an empty one is refused with its line number.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "aggTrades": ("agg_trade_id", "price", "quantity", "transact_time", "is_buyer_maker"),
    "klines": ("open_time", "open", "high", "low", "close", "close_time"),
    "metrics": ("create_time",),
    "fundingRate": ("calc_time", "funding_interval_hours", "last_funding_rate"),
}


def first_empty_cell(con, csv_path: Path, kind: str) -> tuple[int, str] | None:
    """(1-based line, column) of the first row whose required cell is empty, else None (failure path: run on
    `con` when the parsed rows hold a NULL, to name the line)."""
    required = REQUIRED_COLUMNS["klines" if kind in KLINE_KINDS else kind]
    header = has_header(csv_path, kind)
    row = con.execute(f"""
            SELECT line, CASE {' '.join(f"WHEN {c} IS NULL THEN '{c}'" for c in required)} END
            FROM (SELECT row_number() OVER () AS line, * FROM {read_csv_sql(csv_path, kind)})
            WHERE {' OR '.join(f'{c} IS NULL' for c in required)} ORDER BY line LIMIT 1""").fetchone()
    return None if row is None else (int(row[0]) + header, row[1])


#: Runs of identical OI longer than this many 5-minute samples (1 h) are forward-filled data, not a flat market.
STALE_OI_RUN_ROWS = 12


#: How much of a file's first line is read to detect its header (a real header is about 200 characters; a
#: hostile file may have no newline at all).
FIRST_LINE_CHARS = 4096


def _types_for(kind: str) -> dict[str, str]:
    return _READ_TYPES["klines" if kind in KLINE_KINDS else kind]


def has_header(csv_path: Path, kind: str) -> bool:
    """Decide per file from the first cell, never from the date (header cut-overs differ per kind)."""
    with open(csv_path, encoding="utf-8", errors="replace") as f:
        first_line = f.readline(FIRST_LINE_CHARS).lstrip("\ufeff")
    first_cell = first_line.split(",", 1)[0].strip().strip('"')
    if not first_cell:
        return False
    if kind in DATETIME_FIRST_KINDS:
        return first_cell == COLUMNS[kind][0]
    try:
        float(first_cell)
        return False
    except ValueError:
        return True


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def read_csv_sql(csv_path: Path, kind: str) -> str:
    """`read_csv(...)` with the documented columns and explicit types, header detected per file."""
    types = _types_for(kind)
    columns = ", ".join(f"{_sql_str(name)}: {_sql_str(t)}" for name, t in types.items())
    header = "true" if has_header(csv_path, kind) else "false"
    return (
        f"read_csv({_sql_str(str(csv_path))}, header={header}, auto_detect=false, delim=',', quote='\"', "
        f"columns={{{columns}}}, strict_mode=false, null_padding=true)"
    )


def _epoch(col: str) -> str:
    """Epoch milliseconds or microseconds (value > 1e14) to TIMESTAMP."""
    return f"epoch_ms(CASE WHEN {col} > 100000000000000 THEN {col} // 1000 ELSE {col} END)"


def _bool(col: str) -> str:
    """true or false in any case and with spaces around; anything else (an empty cell too) is an error. The
    exact lower-case words Binance writes are matched first, so only other cells pay for lower(trim()) (a
    fifth of the parse of an aggTrades day)."""
    return (
        f"CASE {col} WHEN 'true' THEN true WHEN 'false' THEN false ELSE "
        f"CASE lower(trim({col})) WHEN 'true' THEN true WHEN 'false' THEN false "
        f"ELSE error('is_buyer_maker must be true or false, got ' || coalesce({col}, 'an empty cell')) END END"
    )


def _day_filter(col: str, day: dt.date | None) -> str:
    if day is None:
        return "true"
    return f"{col} >= TIMESTAMP '{day.isoformat()}' AND {col} < TIMESTAMP '{(day + dt.timedelta(days=1)).isoformat()}'"


def agg_trades_select(csv_path: Path, symbol: str, day: dt.date, only_day: bool = False) -> str:
    """SELECT for raw.agg_trades. `only_day` keeps the partition day only (for monthly files); a daily
    file keeps every row so the data-quality check can see rows outside the day."""
    return f"""
        WITH src AS (
            SELECT agg_trade_id, price, quantity, first_trade_id, last_trade_id,
                   {_epoch('transact_time')} AS transact_time, {_bool('is_buyer_maker')} AS is_buyer_maker
            FROM {read_csv_sql(csv_path, 'aggTrades')}
        )
        SELECT {_sql_str(symbol)} AS symbol, DATE '{day.isoformat()}' AS day, *
        FROM src
        WHERE {_day_filter('transact_time', day if only_day else None)}
        QUALIFY row_number() OVER (PARTITION BY agg_trade_id ORDER BY transact_time) = 1
        ORDER BY agg_trade_id
    """


@dataclass(frozen=True)
class CheckedSelect:
    """A cheap select for a clean file, and the full one to use when its `key` turns out to repeat or go
    backwards (warehouse.io.replace_partition's `unique`)."""

    fast: str
    key: str
    full: str
    #: Both selects set `symbol` and `day` to the partition's on every row: the parse may leave them out of
    #: the rows it holds until the write, which adds them back as constants (market/ingest.py).
    partition_constant: bool = False


def agg_trades_checked_select(csv_path: Path, symbol: str, day: dt.date, only_day: bool = False) -> CheckedSelect:
    """raw.agg_trades rows of a file, skipping deduplication and sorting when the ids already strictly increase
    (every daily file Binance publishes): the same rows as `agg_trades_select`, at about the cost of
    read_csv. `is_buyer_maker` follows the same rule on both paths (`_bool`: true or false in any case, nothing
    else; DuckDB's own BOOLEAN cast would also take yes, 1, t and y)."""
    fast = f"""
        SELECT {_sql_str(symbol)} AS symbol, DATE '{day.isoformat()}' AS day, agg_trade_id, price, quantity,
               first_trade_id, last_trade_id, {_epoch('transact_time')} AS transact_time,
               {_bool('is_buyer_maker')} AS is_buyer_maker
        FROM {read_csv_sql(csv_path, "aggTrades")}
        WHERE {_day_filter(_epoch('transact_time'), day if only_day else None)}
    """
    return CheckedSelect(fast, "agg_trade_id", agg_trades_select(csv_path, symbol, day, only_day), partition_constant=True)


def klines_select(csv_path: Path, symbol: str, day: dt.date, interval: str, kind: str = "klines",
                  source: str = "archive", only_day: bool = False) -> str:
    """SELECT for raw.klines / raw.mark_price_klines (12 columns; the `ignore` column is dropped)."""
    return f"""
        WITH src AS (
            SELECT {_epoch('open_time')} AS open_time, open, high, low, close, volume,
                   {_epoch('close_time')} AS close_time, quote_volume, count AS trade_count,
                   taker_buy_volume, taker_buy_quote_volume
            FROM {read_csv_sql(csv_path, kind)}
        )
        SELECT {_sql_str(symbol)} AS symbol, DATE '{day.isoformat()}' AS day, {_sql_str(interval)} AS interval,
               *, {_sql_str(source)} AS source
        FROM src
        WHERE {_day_filter('open_time', day if only_day else None)}
        QUALIFY row_number() OVER (PARTITION BY open_time ORDER BY close_time DESC) = 1
        ORDER BY open_time
    """


def metrics_select(csv_path: Path, symbol: str, day: dt.date, source: str = "archive") -> str:
    """SELECT for raw.open_interest from a daily metrics file.

    Duplicated `create_time` rows keep the last one in file order; `is_stale` marks rows in runs of more
    than STALE_OI_RUN_ROWS identical `sum_open_interest` values (forward-filled upstream).
    """
    return f"""
        WITH src AS (
            SELECT *, row_number() OVER () AS line FROM {read_csv_sql(csv_path, 'metrics')}
        ), dedup AS (
            SELECT strptime(trim(create_time), '%Y-%m-%d %H:%M:%S') AS create_time,
                   sum_open_interest, sum_open_interest_value, count_toptrader_long_short_ratio,
                   sum_toptrader_long_short_ratio, count_long_short_ratio, sum_taker_long_short_vol_ratio
            FROM src
            QUALIFY row_number() OVER (PARTITION BY trim(create_time) ORDER BY line DESC) = 1
        ), runs AS (
            SELECT *, sum(CASE WHEN sum_open_interest IS NOT DISTINCT FROM prev THEN 0 ELSE 1 END)
                          OVER (ORDER BY create_time) AS run_id
            FROM (SELECT *, lag(sum_open_interest) OVER (ORDER BY create_time) AS prev FROM dedup)
        )
        SELECT {_sql_str(symbol)} AS symbol, DATE '{day.isoformat()}' AS day, create_time, sum_open_interest,
               sum_open_interest_value, count_toptrader_long_short_ratio, sum_toptrader_long_short_ratio,
               count_long_short_ratio, sum_taker_long_short_vol_ratio,
               count(*) OVER (PARTITION BY run_id) > {STALE_OI_RUN_ROWS} AS is_stale,
               {_sql_str(source)} AS source
        FROM runs
        ORDER BY create_time
    """


def funding_select(csv_path: Path, symbol: str, day: dt.date, source: str = "archive") -> str:
    """SELECT for raw.funding_rates: the settlements of `day` from a monthly fundingRate file.

    `calc_time` can be 1 ms after the settlement instant: `funding_time` snaps it to the nearest minute.
    `funding_rate_8h` = rate × 8 / interval hours, so thresholds mean the same for 4h and 1h symbols.
    """
    return f"""
        WITH src AS (
            SELECT {_epoch('calc_time')} AS calc_time, funding_interval_hours, last_funding_rate
            FROM {read_csv_sql(csv_path, 'fundingRate')}
        ), snapped AS (
            SELECT *, epoch_ms(CAST(round(epoch_ms(calc_time) / 60000.0) AS BIGINT) * 60000) AS funding_time FROM src
        )
        SELECT {_sql_str(symbol)} AS symbol, DATE '{day.isoformat()}' AS day, calc_time, funding_time,
               funding_interval_hours, last_funding_rate,
               last_funding_rate * 8.0 / funding_interval_hours AS funding_rate_8h, {_sql_str(source)} AS source
        FROM snapped
        WHERE {_day_filter('funding_time', day)}
        QUALIFY row_number() OVER (PARTITION BY funding_time ORDER BY calc_time DESC) = 1
        ORDER BY funding_time
    """


def _line_of_value(csv_path: Path, values: list[str], column: int | None = None) -> int | None:
    """1-based number of the first line of the CSV with a cell (the `column`-th one when given) equal to one of
    `values` (failure path only)."""
    wanted = {v.strip() for v in values if v.strip()}
    if not wanted:
        return None
    with open(csv_path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            cells = [cell.strip().strip('"') for cell in line.rstrip("\r\n").split(",")]
            if column is not None:
                cells = cells[column:column + 1]
            if wanted.intersection(cells):
                return number
    return None


def describe_duckdb_error(error: Exception, csv_path: Path) -> MalformedArchiveFile:
    """Turn a DuckDB conversion error into a short, specific message naming the file and the line.

    DuckDB names the line of a CSV cell it cannot convert; for a value rejected later in SQL (a boolean, a
    datetime string, an epoch out of range) the line is found by looking for the value in the file.
    """
    text = str(error)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    keep = [ln for ln in lines if ln.startswith(("Original Line", "Error when converting", "Invalid Input"))
            or "must be" in ln or "Could not" in ln]
    detail = " | ".join(keep[:3] or lines[:2])
    match = re.search(r"CSV Error on Line: (\d+)", text)
    if match:
        line = int(match.group(1))
    else:
        first = lines[0] if lines else ""
        named = re.search(r"(\w+) must be true or false, got (\S+)$", first)
        if named and named.group(1) in COLUMNS["aggTrades"]:  # the value is looked for in its own column only
            line = _line_of_value(Path(csv_path), [named.group(2)], COLUMNS["aggTrades"].index(named.group(1)))
        else:
            values = re.findall(r'"([^"]*)"', first) + re.findall(r"got (\S+)$", first)
            line = _line_of_value(Path(csv_path), values)
    where = f"{Path(csv_path).name}, line {line}" if line else Path(csv_path).name
    return MalformedArchiveFile(f"malformed row in {where}: {detail}")
