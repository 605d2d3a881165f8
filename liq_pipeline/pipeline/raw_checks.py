"""Checks of a raw archive file's parsed rows, run before anything is written: wrong data here would flow
into every model asset, so the materialization fails and the partition keeps its previous rows. Each check
reads the parsed relation (an in-memory DuckDB of the ingest), never the warehouse."""

import datetime as dt

from liq_pipeline.config import KLINE_INTERVAL_MS
from liq_pipeline.market import parsers
from liq_pipeline.market.ingest import Findings


# ---------------------------------------------------------------------------------------------- blocking checks
def outside_day(mem, rel: str, time_col: str, day: dt.date) -> list[str]:
    n, first, last = mem.execute(
        f"SELECT count(*), min({time_col}), max({time_col}) FROM {rel} WHERE CAST({time_col} AS DATE) <> ?",
        [day]).fetchone()
    if not n:
        return []
    return [f"{n:,} rows lie outside the partition day {day} ({first} … {last}): the file holds another "
            "day's data under this name"]


def agg_trades_blocking(mem, rel: str, csv, symbol: str, day: dt.date) -> Findings:
    """Rows outside the day block the write; ids repeated with different contents are counted and reported
    (the parser keeps the earliest by transact_time)."""
    outside = outside_day(mem, rel, "transact_time", day)
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


def klines_blocking(interval: str):
    labels = {ms: name for name, ms in KLINE_INTERVAL_MS.items()}

    def check(mem, rel: str, csv, symbol: str, day: dt.date) -> Findings:
        expected_ms = KLINE_INTERVAL_MS[interval]  # validated by MarketSource before any file is read
        problems = outside_day(mem, rel, "open_time", day)
        step_ms = mem.execute(f"""SELECT min(step) FROM (SELECT epoch_ms(open_time)
                                      - lag(epoch_ms(open_time)) OVER (ORDER BY open_time) AS step FROM {rel})
                                  WHERE step > 0""").fetchone()[0]
        if step_ms is not None and step_ms != expected_ms:
            found = labels.get(step_ms, f"{step_ms / 60_000:g}-minute")
            problems.append(f"its candles are {found} apart, not {interval}: a kline file of another interval "
                            f"(the source is configured for {interval}: LIQ_KLINE_INTERVAL / LIQ_MARK_KLINE_INTERVAL)")
        return Findings(problems)
    return check


def metrics_blocking(mem, rel: str, csv, symbol: str, day: dt.date) -> Findings:
    problems = []
    if parsers.has_header(csv, "metrics"):
        with open(csv, encoding="utf-8", errors="replace") as f:
            header = [c.strip().strip('"') for c in f.readline().lstrip("\ufeff").split(",")]
        wanted = ["create_time", "symbol", "sum_open_interest", "sum_open_interest_value"]
        if header[:4] != wanted:
            problems.append(f"its header starts {','.join(header[:4])!r}, not {','.join(wanted)!r}: a metrics file "
                            "without the open-interest columns")
    if not problems:
        empty = mem.execute(f"SELECT count(*) FILTER (WHERE sum_open_interest IS NULL), count(*) FROM {rel}").fetchone()
        if empty[1] and empty[0] == empty[1]:
            problems.append("sum_open_interest is empty on every row: a metrics file without open interest")
    return Findings(problems + outside_day(mem, rel, "create_time", day))
