"""Checks of a raw archive file's parsed rows, run before anything is written: wrong data here would flow
into every model asset, so the materialization fails and the partition keeps its previous rows. Each check
reads the parsed relation (an in-memory DuckDB of the ingest) and the file itself, never the warehouse; the
reference price of the symbol's neighbouring stored days is passed in (`reference`)."""

import datetime as dt

from liq_pipeline.config import KLINE_INTERVAL_MS
from liq_pipeline.market import identity, parsers
from liq_pipeline.market.ingest import Findings


def agg_trades_blocking(mem, rel: str, csv, symbol: str, day: dt.date, reference: float | None) -> Findings:
    """Rows outside the day and prices of another symbol block the write; ids repeated with different contents
    are counted and reported (the parser keeps the earliest by transact_time)."""
    outside, median = identity.audit(mem, rel, "transact_time", day, None, identity.VALUE_RULES["aggTrades"], "trades",
                                     price="price")
    outside += identity.price_level(median, reference, symbol, "trade price")
    parsed = mem.execute(f"SELECT count(*) FROM {rel}").fetchone()[0]
    if csv_data_lines(csv, "aggTrades") == parsed:  # no id repeated: skip the costlier grouping below
        return Findings(outside, [], {"duplicate_ids": 0, "conflicting_duplicate_ids": 0})
    duplicated, conflicting = mem.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE variants > 1) FROM (
            SELECT agg_trade_id, count(DISTINCT (price, quantity, first_trade_id, last_trade_id, transact_time,
                                                 lower(trim(is_buyer_maker)))) AS variants
            FROM {parsers.read_csv_sql(csv, 'aggTrades')} GROUP BY agg_trade_id HAVING count(*) > 1)""").fetchone()
    warnings = []
    if conflicting:
        warnings.append(f"{conflicting:,} trade ids appear more than once with different contents (price, quantity, "
                        "time or side); the earliest by transact_time was kept")
    return Findings(outside, warnings, {"duplicate_ids": int(duplicated), "conflicting_duplicate_ids": int(conflicting)})


def csv_data_lines(csv, kind: str) -> int:
    """Non-header lines of a CSV, counted in 1 MiB chunks (a fraction of a second for a 100 MB file)."""
    lines, last = 0, b"\n"
    with open(csv, "rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    lines += last != b"\n"  # a last line without its newline
    return lines - parsers.has_header(csv, kind)


def klines_blocking(interval: str, priced: bool, kind: str):
    labels = {ms: name for name, ms in KLINE_INTERVAL_MS.items()}

    def check(mem, rel: str, csv, symbol: str, day: dt.date, reference: float | None) -> Findings:
        expected_ms = KLINE_INTERVAL_MS[interval]  # validated by MarketSource before any file is read
        problems, median = identity.audit(mem, rel, "open_time", day, expected_ms, identity.VALUE_RULES[kind],
                                          "candle open times", price="close" if priced else None)
        if priced:
            problems += identity.price_level(median, reference, symbol, "close")
        step_ms = mem.execute(f"""SELECT min(step) FROM (SELECT epoch_ms(open_time)
                                      - lag(epoch_ms(open_time)) OVER (ORDER BY open_time) AS step FROM {rel})
                                  WHERE step > 0""").fetchone()[0]
        if step_ms is not None and step_ms != expected_ms:
            found = labels.get(step_ms, f"{step_ms / 60_000:g}-minute")
            problems.append(f"its candles are {found} apart, not {interval}: a kline file of another interval "
                            f"(the source is configured for {interval}: LIQ_KLINE_INTERVAL / LIQ_MARK_KLINE_INTERVAL)")
        return Findings(problems)
    return check


def metrics_blocking(mem, rel: str, csv, symbol: str, day: dt.date, reference: float | None) -> Findings:
    """A header without the OI columns, OI empty on every row or on some, another symbol's rows (its own
    `symbol` column, or an OI value per contract far from the symbol's price), rows outside the day or off the
    5-minute grid: each blocks the write."""
    problems = []
    if parsers.has_header(csv, "metrics"):
        with open(csv, encoding="utf-8", errors="replace") as f:
            header = [c.strip().strip('"') for c in f.readline(parsers.FIRST_LINE_CHARS).lstrip("\ufeff").split(",")]
        wanted = ["create_time", "symbol", "sum_open_interest", "sum_open_interest_value"]
        if header[:4] != wanted:
            problems.append(f"its header starts {','.join(header[:4])!r}, not {','.join(wanted)!r}: a metrics file "
                            "without the open-interest columns")
    if not problems:
        empty = mem.execute(f"SELECT count(*) FILTER (WHERE sum_open_interest IS NULL), count(*) FROM {rel}").fetchone()
        if empty[1] and empty[0] == empty[1]:
            problems.append("sum_open_interest is empty on every row: a metrics file without open interest")
        problems += identity.metrics_file_audit(mem, csv, symbol)
        implied = identity.median(mem, rel, "sum_open_interest_value / nullif(sum_open_interest, 0)")
        problems += identity.price_level(implied, reference, symbol, "price implied by OI value / OI")
    found, _ = identity.audit(mem, rel, "create_time", day, METRICS_STEP_MS, identity.VALUE_RULES["metrics"],
                              "metrics samples")
    return Findings(problems + found)


#: Binance samples the metrics every 5 minutes, on the 5-minute boundaries.
METRICS_STEP_MS = 300_000


def funding_blocking(mem, rel: str, csv, symbol: str, day: dt.date, reference: float | None) -> Findings:
    """Settlements outside the file's month or off the hour (settlements fall on the hour), and a value no rule
    allows on any day of the file, block the write."""
    found, _ = identity.audit(mem, rel, "funding_time", day, 3_600_000, identity.VALUE_RULES["fundingRate"],
                              "funding settlements")
    return Findings(identity.funding_file_audit(mem, csv, day) + found)
