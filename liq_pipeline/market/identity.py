"""Does a parsed archive file belong to its partition? Its period, time grid, symbol and price level, and
whether its required cells are all present: rules run on the parsed rows (DuckDB SQL in the private in-memory
connection of market.ingest) before anything is stored. Each returns the problems it found as sentences that
name the rule; an empty list means the file passes. A file with a problem is never stored (market.ingest).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from liq_pipeline.market import parsers

#: A file whose median price differs from the symbol's stored neighbouring days by more than this factor is
#: another symbol's file (ETHUSDT at about 3,000 under BTCUSDT at about 90,000 is a factor of 30). BTCUSDT's
#: largest daily move is about 40 % (2020-03-12); a factor of 3 leaves room for far more volatile symbols.
MAX_PRICE_RATIO = 3.0


def _interval_label(step_ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if step_ms % size == 0:
            return f"{step_ms // size}{unit}"
    return f"{step_ms} ms"


def off_grid(mem: duckdb.DuckDBPyConnection, rel: str, time_col: str, step_ms: int, what: str) -> list[str]:
    """Rows whose `time_col` is not a whole multiple of `step_ms` since the epoch: Binance opens every candle
    and samples every metric on the interval's boundaries, so an off-grid row is a clock-shifted file."""
    n, total, first = mem.execute(f"""
        SELECT count(*) FILTER (WHERE epoch_ms({time_col}) % {int(step_ms)} <> 0), count(*),
               min({time_col}) FILTER (WHERE epoch_ms({time_col}) % {int(step_ms)} <> 0) FROM {rel}""").fetchone()
    if not n:
        return []
    label = _interval_label(step_ms)
    return [f"{n:,} of {total:,} {what} are not on the {label} grid (the first at {first}): {what} fall on the "
            f"interval's boundaries, so the file's clock is shifted"]


def outside_month(mem: duckdb.DuckDBPyConnection, csv_path: Path, month: dt.date) -> list[str]:
    """Funding settlements of a monthly fundingRate file that lie outside the file's own month (the file of
    another month under this month's name, e.g. every timestamp moved by +31 days)."""
    start = month.replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    n, total, first, last = mem.execute(f"""
        SELECT count(*) FILTER (WHERE t < ? OR t >= ?), count(*), min(t), max(t)
        FROM (SELECT {parsers._epoch('calc_time')} AS t FROM {parsers.read_csv_sql(csv_path, 'fundingRate')})""",
        [start, end]).fetchone()
    if not n:
        return []
    return [f"{n:,} of {total:,} settlements lie outside its month {start:%Y-%m} ({first} … {last}): the file "
            "holds another month's funding under this name"]


def foreign_symbol(mem: duckdb.DuckDBPyConnection, csv_path: Path, symbol: str) -> list[str]:
    """Rows of a metrics file whose own `symbol` column names another symbol than its partition's."""
    n, other = mem.execute(f"""
        SELECT count(*), any_value(trim(symbol)) FROM {parsers.read_csv_sql(csv_path, 'metrics')}
        WHERE trim(symbol) <> ?""", [symbol]).fetchone()
    if not n:
        return []
    return [f"its symbol column says {other} on {n:,} rows, not {symbol}: another symbol's file under this name"]


def price_level(observed: float | None, reference: float | None, symbol: str, what: str,
                max_ratio: float = MAX_PRICE_RATIO) -> list[str]:
    """The file's median price against `reference`, the symbol's median price on its stored neighbouring days
    (None when nothing is stored near the day: then there is nothing to compare with)."""
    if observed is None or reference is None or reference <= 0:
        return []
    if observed > 0 and 1 / max_ratio <= observed / reference <= max_ratio:
        return []
    return [f"its median {what} is {observed:,.6g} while {symbol} traded at {reference:,.6g} on the neighbouring "
            f"days (more than {max_ratio:g} times apart): another symbol's file under this name"]


def median(mem: duckdb.DuckDBPyConnection, rel: str, expr: str) -> float | None:
    value = mem.execute(f"SELECT median({expr}) FROM {rel}").fetchone()[0]
    return None if value is None else float(value)


def empty_cells(mem: duckdb.DuckDBPyConnection, csv_path: Path, kind: str, column: str) -> list[str]:
    """Rows of the CSV where `column` is empty: a partial column is refused, never counted as present. Names
    how many rows and the first line (1-based, header included)."""
    header = parsers.has_header(csv_path, kind)
    n, total, first = mem.execute(f"""
        SELECT count(*) FILTER (WHERE {column} IS NULL), count(*), min(line) FILTER (WHERE {column} IS NULL)
        FROM (SELECT {column}, row_number() OVER () AS line FROM {parsers.read_csv_sql(csv_path, kind)})""").fetchone()
    if not n or n == total:  # a column empty on every row is reported by the caller's own rule
        return []
    return [f"{column} is empty on {n:,} of {total:,} rows (the first on line {first + header}): a partial "
            "column is not stored"]


def bad_values(mem: duckdb.DuckDBPyConnection, rel: str, rules: dict[str, str]) -> list[str]:
    """Rows breaking a value rule, one problem per rule: `rules` maps a SQL condition every row must meet
    (e.g. `isfinite(price) AND price > 0`) to how it reads in a message (`price a finite number > 0`). A NULL
    cell is left to the empty-cell rules."""
    if not rules:
        return []
    conditions = list(rules)
    counts = mem.execute("SELECT " + ", ".join(f"count(*) FILTER (WHERE NOT ({c}))" for c in conditions)
                         + f" FROM {rel}").fetchone()
    return [f"{n:,} rows break the rule {rules[c]}" for c, n in zip(conditions, counts, strict=True) if n]


def finite(column: str, minimum: str | None = None) -> dict[str, str]:
    """The rule `column` is a finite number (`> 0` or `>= 0` when `minimum` says so), as for `bad_values`."""
    bound = f" AND {column} {minimum}" if minimum else ""
    return {f"{column} IS NULL OR (isfinite({column}){bound})": f"{column} is a finite number{' ' + minimum if minimum else ''}"}


#: Value rules of each raw kind: prices positive, amounts non-negative, everything finite. Premium-index
#: "prices" are premiums (ratios near 0, often negative): finite only.
VALUE_RULES: dict[str, dict[str, str]] = {
    "aggTrades": {**finite("price", "> 0"), **finite("quantity", "> 0")},
    "klines": {**finite("open", "> 0"), **finite("high", "> 0"), **finite("low", "> 0"), **finite("close", "> 0"),
               **finite("volume", ">= 0"), **finite("quote_volume", ">= 0")},
    "premiumIndexKlines": {**finite("open"), **finite("high"), **finite("low"), **finite("close")},
    "metrics": {**finite("sum_open_interest", ">= 0"), **finite("sum_open_interest_value", ">= 0"),
                **finite("count_toptrader_long_short_ratio", ">= 0"), **finite("sum_toptrader_long_short_ratio", ">= 0"),
                **finite("count_long_short_ratio", ">= 0"), **finite("sum_taker_long_short_vol_ratio", ">= 0")},
    # Binance settles every 1, 2, 4 or 8 hours; a rate beyond ±100 % per interval is not a funding rate.
    "fundingRate": {"funding_interval_hours IN (1, 2, 4, 8)": "funding_interval_hours is 1, 2, 4 or 8",
                    **finite("last_funding_rate"), "abs(last_funding_rate) < 1": "|last_funding_rate| < 1"},
}
VALUE_RULES["markPriceKlines"] = VALUE_RULES["klines"]
