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


def funding_file_audit(mem: duckdb.DuckDBPyConnection, csv_path: Path, month: dt.date) -> list[str]:
    """The rules over every row of a monthly fundingRate file, not only the partition day's: settlements outside
    the file's own month (another month's file under this name, e.g. every timestamp moved by +31 days), and the
    funding value rules (a damaged cell on any day makes the whole file suspect)."""
    start = month.replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    rules = VALUE_RULES["fundingRate"]
    row = mem.execute(f"""
        SELECT count(*) FILTER (WHERE t < ? OR t >= ?), count(*), min(t), max(t)
               {''.join(f', count(*) FILTER (WHERE NOT ({c}))' for c in rules)}
        FROM (SELECT {parsers._epoch('calc_time')} AS t, funding_interval_hours, last_funding_rate
              FROM {parsers.read_csv_sql(csv_path, 'fundingRate')})""", [start, end]).fetchone()
    n, total, first, last = row[:4]
    problems = [f"{k:,} rows of the file break the rule {rules[c]}" for c, k in zip(rules, row[4:], strict=True) if k]
    if n:
        problems.insert(0, f"{n:,} of {total:,} settlements lie outside its month {start:%Y-%m} ({first} … {last}): "
                           "the file holds another month's funding under this name")
    return problems


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


def finite(column: str, minimum: str | None = None) -> dict[str, str]:
    """The rule `column` is a finite number (`> 0` or `>= 0` when `minimum` says so): {SQL condition every row
    must meet: how it reads in a message}, as `audit` takes them. A NULL cell is left to the empty-cell rules."""
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


def audit(mem: duckdb.DuckDBPyConnection, rel: str, time_col: str, day: dt.date, step_ms: int | None,
          rules: dict[str, str], what: str, price: str | None = None) -> tuple[list[str], float | None]:
    """The rules over the parsed rows in one pass (one query, so the checks cost one scan): rows outside the
    partition `day`, times off the `step_ms` grid (None: no grid), rows breaking a value rule. Returns (the
    problems found, the median of the `price` column when one is named, else None)."""
    grid = f"epoch_ms({time_col}) % {int(step_ms)} <> 0" if step_ms else "false"
    conditions = list(rules)
    row = mem.execute(f"""
        SELECT count(*) FILTER (WHERE CAST({time_col} AS DATE) <> ?),
               min({time_col}) FILTER (WHERE CAST({time_col} AS DATE) <> ?),
               max({time_col}) FILTER (WHERE CAST({time_col} AS DATE) <> ?),
               count(*) FILTER (WHERE {grid}), min({time_col}) FILTER (WHERE {grid}), count(*),
               {f'median({price})' if price else 'NULL'}
               {''.join(f', count(*) FILTER (WHERE NOT ({c}))' for c in conditions)}
        FROM {rel}""", [day, day, day]).fetchone()
    outside, first_out, last_out, off, first_off, total, median_price = row[:7]
    problems = []
    if outside:
        problems.append(f"{outside:,} rows lie outside the partition day {day} ({first_out} … {last_out}): the file "
                        "holds another day's data under this name")
    if off:
        problems.append(f"{off:,} of {total:,} {what} are not on the {_interval_label(int(step_ms))} grid (the first "
                        f"at {first_off}): {what} fall on the interval's boundaries, so the file's clock is shifted")
    problems += [f"{n:,} rows break the rule {rules[c]}" for c, n in zip(conditions, row[7:], strict=True) if n]
    return problems, None if median_price is None else float(median_price)


def metrics_file_audit(mem: duckdb.DuckDBPyConnection, csv_path: Path, symbol: str) -> list[str]:
    """The rules a metrics file's own cells must meet, read from the CSV in one pass: the open-interest columns
    present on every row (a partial column is refused, never counted as present: names how many rows and the
    first line, header included), and its `symbol` column naming the partition's symbol."""
    header = parsers.has_header(csv_path, "metrics")
    oi, value = "sum_open_interest", "sum_open_interest_value"
    row = mem.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE {oi} IS NULL), min(line) FILTER (WHERE {oi} IS NULL),
               count(*) FILTER (WHERE {value} IS NULL), min(line) FILTER (WHERE {value} IS NULL),
               count(*) FILTER (WHERE trim(symbol) <> ?), any_value(trim(symbol)) FILTER (WHERE trim(symbol) <> ?)
        FROM (SELECT *, row_number() OVER () AS line FROM {parsers.read_csv_sql(csv_path, 'metrics')})""",
        [symbol, symbol]).fetchone()
    total, problems = row[0], []
    for column, (n, first) in ((oi, row[1:3]), (value, row[3:5])):
        if n and n < total:  # a column empty on every row is reported by the caller's own rule
            problems.append(f"{column} is empty on {n:,} of {total:,} rows (the first on line {first + header}): a "
                            "partial column is not stored")
    if row[5]:
        problems.append(f"its symbol column says {row[6]} on {row[5]:,} rows, not {symbol}: another symbol's file "
                        "under this name")
    return problems
