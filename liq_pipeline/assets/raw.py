"""Raw Binance tables, one partition per symbol × day, with their data-quality checks.

Each asset fetches one archive file through MarketSource (simulated mirror, local mirror or
data.binance.vision), parses it in DuckDB and replaces its partition atomically. The checks are emitted
with the materialization (so they always know their partition) and are readable in the UI.
"""


import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from liq_pipeline import partitions
from liq_pipeline.config import KLINE_INTERVAL_MS, ConfigError
from liq_pipeline.market import identity, parsers
from liq_pipeline.market.archive import ArchiveError, NotYetPublished
from liq_pipeline.market.formats import ArchiveFile
from liq_pipeline.market.ingest import Findings, IngestResult, prepare_partition, store_partition
from liq_pipeline.resources import MarketSource
from liq_pipeline.warehouse.reference_prices import neighbour_price

GROUP = "raw"
RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)
#: A backfill of N days of one symbol is one run (days are processed in order).
SINGLE_RUN = dg.BackfillPolicy.single_run()


@dataclass(frozen=True)
class _CheckOutcome:
    name: str
    passed: bool
    severity: dg.AssetCheckSeverity
    description: str
    metadata: dict


def _raise_clear(error: Exception, symbol: str, day: dt.date) -> None:
    """Re-raise archive and parse errors as a dg.Failure that says what happened and what to do."""
    if isinstance(error, NotYetPublished):
        raise dg.Failure(
            description=f"{symbol} {day}: not yet published in the archive ({error}). Binance publishes daily "
            "files about 1.5-2 days late; the daily schedule retries later.",
            allow_retries=False,
        ) from error
    raise dg.Failure(description=f"{symbol} {day}: {error}", allow_retries=False) from error


def _witnesses(market: MarketSource, symbol: str, day: dt.date) -> list[ArchiveFile]:
    """Files of the same day whose presence shows the source answers for this symbol (see ingest)."""
    return [ArchiveFile("klines", symbol, day, interval=market.kline_interval), ArchiveFile("metrics", symbol, day)]


def _ingest_all(context, duckdb: DuckDBResource, market: MarketSource, table: str, spec_for, select_for,
                fallback_for=None, check=None, priced: bool = False) -> list[IngestResult]:
    """Each partition of the run: download and parse without the warehouse, then one short write. `check`
    gets the symbol's price on its stored neighbouring days when `priced` (read before the download, in one
    short read), else None."""
    try:
        client = market.client()
    except ConfigError as e:  # retrying cannot fix a setting
        raise dg.Failure(description=f"configuration error: {e}", allow_retries=False) from e
    results = []
    with tempfile.TemporaryDirectory(prefix="liq-ingest-") as tmp:
        for symbol, day in partitions.symbol_days(context):
            reference = None
            if priced:
                with duckdb.get_connection() as con:
                    reference = neighbour_price(con, symbol, day)
            try:
                prepared = prepare_partition(
                    client, table, symbol, day, spec_for(symbol, day),
                    lambda csv, only_day, s=symbol, d=day: select_for(csv, s, d, only_day), Path(tmp),
                    fallback_for(symbol, day) if fallback_for else None, _witnesses(market, symbol, day),
                    (lambda mem, rel, csv, s=symbol, d=day, r=reference: check(mem, rel, csv, s, d, r)) if check else None,
                )
                with duckdb.get_connection() as con:
                    result = store_partition(con, client, prepared)
            except (ArchiveError, parsers.MalformedArchiveFile) as e:
                _raise_clear(e, symbol, day)
            for warning in result.warnings:
                context.log.warning(f"{table} {symbol} {day}: {warning}")
            results.append(result)
    return results


# ---------------------------------------------------------------------------------------------- blocking checks
# Run on the parsed rows before anything is written: wrong data here would flow into every model asset, so
# the materialization fails and the partition keeps its previous rows.
def _agg_trades_blocking(mem, rel: str, csv, symbol: str, day: dt.date, reference: float | None) -> Findings:
    """Rows outside the day and prices of another symbol block the write; ids repeated with different contents
    are counted and reported (the parser keeps the earliest by transact_time)."""
    outside, median = identity.audit(mem, rel, "transact_time", day, None, identity.VALUE_RULES["aggTrades"], "trades",
                                     price="price")
    outside += identity.price_level(median, reference, symbol, "trade price")
    parsed = mem.execute(f"SELECT count(*) FROM {rel}").fetchone()[0]
    if _csv_data_lines(csv, "aggTrades") == parsed:  # no id repeated: skip the costlier grouping below
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


def _csv_data_lines(csv, kind: str) -> int:
    """Non-header lines of a CSV, counted in 1 MiB chunks (a fraction of a second for a 100 MB file)."""
    lines, last = 0, b"\n"
    with open(csv, "rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    lines += last != b"\n"  # a last line without its newline
    return lines - parsers.has_header(csv, kind)


def _klines_blocking(interval: str, priced: bool, kind: str):
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


def _metrics_blocking(mem, rel: str, csv, symbol: str, day: dt.date, reference: float | None) -> Findings:
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


def _funding_blocking(mem, rel: str, csv, symbol: str, day: dt.date, reference: float | None) -> Findings:
    """Settlements outside the file's month or off the hour (settlements fall on the hour), and a value no rule
    allows on any day of the file, block the write."""
    found, _ = identity.audit(mem, rel, "funding_time", day, 3_600_000, identity.VALUE_RULES["fundingRate"],
                              "funding settlements")
    return Findings(identity.funding_file_audit(mem, csv, day) + found)


def _time_range(con, table: str, time_col: str, symbol: str, day: dt.date) -> tuple[str, str]:
    lo, hi = con.execute(f"SELECT min({time_col}), max({time_col}) FROM {table} WHERE symbol = ? AND day = ?",
                         [symbol, day]).fetchone()
    return (str(lo) if lo else "", str(hi) if hi else "")


def _result(context, duckdb: DuckDBResource, table: str, time_col: str, results: list[IngestResult],
            checks) -> dg.MaterializeResult:
    """Metadata (rows, time range, checksum per partition) plus the check results of the run."""
    per_partition, by_check = [], {}
    with duckdb.get_connection() as con:
        for r in results:
            lo, hi = _time_range(con, table, time_col, r.symbol, r.day)
            per_partition.append(f"| {r.symbol} | {r.day} | {r.rows:,} | {lo} | {hi} | {r.status} | `{(r.sha256 or '')[:16]}` |")
            for outcome in checks(con, r):
                by_check.setdefault(outcome.name, []).append(outcome)
    check_results = {name: _merge(outcomes) for name, outcomes in by_check.items()}
    table_md = "| symbol | day | rows | first | last | status | sha256 |\n|---|---|---|---|---|---|---|\n" + "\n".join(per_partition)
    first = results[0]
    metadata = {
        "rows": dg.MetadataValue.int(sum(r.rows for r in results)),
        "partitions": dg.MetadataValue.md(table_md),
        "source_file": dg.MetadataValue.text(first.file_name or ""),
        "source_sha256": dg.MetadataValue.text(first.sha256 or ""),
        "checksum_verified": dg.MetadataValue.bool(all(r.verified for r in results if r.status != "missing")),
        "time_range": dg.MetadataValue.text(" → ".join(_time_range_all(duckdb, table, time_col, results))),
        "unverified_files": dg.MetadataValue.int(sum(1 for r in results if r.status != "missing" and not r.verified)),
    }
    warnings = [f"{r.symbol} {r.day}: {w}" for r in results for w in r.warnings]
    if warnings:  # also in the run log; here they stay with the materialization
        metadata["warnings"] = dg.MetadataValue.md("\n".join(f"- {w}" for w in warnings))
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(check_name=o.name, passed=o.passed, severity=o.severity, description=o.description,
                                metadata=o.metadata)
            for o in check_results.values()
        ],
    )


#: What each raw check asserts, shown on its page in the UI (one result per run names its symbol-days).
CHECK_DESCRIPTIONS = {
    "agg_trade_ids_continuous": "aggTrade ids of the symbol-day have no gap (a gap = trades missing from the archive "
                                "file) and duplicated ids carry identical contents. Warns.",
    "agg_trades_within_day": "Every trade's time lies inside its partition's UTC day. Errors.",
    "open_interest_sampled_every_5m": "288 five-minute open-interest samples for the symbol-day; sparser OI is used as "
                                      "nearest-sample-before (warns down to hourly, errors below).",
    "open_interest_not_forward_filled": f"No run of more than {parsers.STALE_OI_RUN_ROWS} identical OI values (forward-"
                                        "filled upstream; the model ignores them). Warns.",
    "funding_settlements_match_interval": "Settlements of the symbol-day = 24 h / the funding interval. Warns.",
    **{f"{k}_complete_for_interval": f"One {k.replace('_', ' ')} candle per interval of the symbol-day (1,440 at "
                                     "1m); warns from 95 % complete, errors below."
       for k in ("klines", "mark_price_klines", "premium_index_klines")},
}


def _check_spec(name: str, asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description=CHECK_DESCRIPTIONS[name])


def _merge(outcomes: list[_CheckOutcome]) -> _CheckOutcome:
    """One result per check for a run over many partitions: it passes only if every partition passes, has the
    worst severity of the failures, and names every failing partition (not only the first)."""
    if len(outcomes) == 1:
        return outcomes[0]
    failing = [o for o in outcomes if not o.passed]
    every = dg.MetadataValue.md("| symbol | day | result |\n|---|---|---|\n" + "\n".join(
        f"| {o.metadata.get('symbol', '')} | {o.metadata.get('day', '')} | {'pass' if o.passed else '**fail**'}: "
        f"{o.description.split(': ', 1)[-1]} |" for o in outcomes))
    if not failing:
        covered = sorted({(str(o.metadata.get("symbol", "")), str(o.metadata.get("day", ""))) for o in outcomes})
        symbols = sorted({sym for sym, _ in covered})
        span = f"{covered[0][1]}…{covered[-1][1]}" if covered else ""
        return _CheckOutcome(outcomes[0].name, True, outcomes[0].severity,
                             f"all {len(outcomes)} partitions pass ({', '.join(symbols)} {span})",
                             {"partitions": len(outcomes), "symbols": ", ".join(symbols), "results": every})
    errors = [o for o in failing if o.severity == dg.AssetCheckSeverity.ERROR]
    severity = dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN
    table = "| partition result |\n|---|\n" + "\n".join(f"| {o.description} |" for o in failing)
    days = ", ".join(f"{o.metadata.get('symbol', '')} {o.metadata.get('day', '')}".strip() for o in failing)
    return _CheckOutcome(
        outcomes[0].name, False, severity,
        f"{len(failing)} of {len(outcomes)} partitions fail ({days}): " + "; ".join(o.description for o in failing[:3])
        + (" …" if len(failing) > 3 else ""),
        {"partitions": len(outcomes), "failing": len(failing), "failing_days": days,
         "failures": dg.MetadataValue.md(table), "results": every},
    )


def _time_range_all(duckdb: DuckDBResource, table: str, time_col: str, results: list[IngestResult]) -> tuple[str, str]:
    with duckdb.get_connection() as con:
        ranges = [_time_range(con, table, time_col, r.symbol, r.day) for r in results]
    los = [lo for lo, _ in ranges if lo]
    his = [hi for _, hi in ranges if hi]
    return (min(los) if los else "", max(his) if his else "")


def _missing_check(name: str, r: IngestResult) -> _CheckOutcome | None:
    if r.status == "missing":
        return _CheckOutcome(name, False, dg.AssetCheckSeverity.ERROR,
                             f"{r.symbol} {r.day}: the archive has no file ({r.file_name}); partition left empty",
                             {"symbol": r.symbol, "day": str(r.day)})
    return None


# ---------------------------------------------------------------------------------------------- aggTrades
def _agg_trade_checks(con, r: IngestResult) -> list[_CheckOutcome]:
    missing = _missing_check("agg_trade_ids_continuous", r)
    if missing:
        return [missing, _CheckOutcome("agg_trades_within_day", False, dg.AssetCheckSeverity.ERROR,
                                       missing.description, missing.metadata)]
    gaps, missing_ids, lo_id, hi_id = con.execute(
        """SELECT count(*) FILTER (WHERE agg_trade_id - prev > 1), coalesce(sum(agg_trade_id - prev - 1) FILTER (WHERE agg_trade_id - prev > 1), 0),
                  min(agg_trade_id), max(agg_trade_id)
           FROM (SELECT agg_trade_id, lag(agg_trade_id) OVER (ORDER BY agg_trade_id) AS prev
                 FROM raw.agg_trades WHERE symbol = ? AND day = ?)""", [r.symbol, r.day]).fetchone()
    outside = con.execute(
        "SELECT count(*) FROM raw.agg_trades WHERE symbol = ? AND day = ? AND CAST(transact_time AS DATE) <> day",
        [r.symbol, r.day]).fetchone()[0]
    conflicting = r.counts.get("conflicting_duplicate_ids", 0)
    meta = {"symbol": r.symbol, "day": str(r.day), "id_range": f"{lo_id} … {hi_id}", "gaps": int(gaps),
            "missing_ids": int(missing_ids), "duplicate_ids": r.counts.get("duplicate_ids", 0),
            "conflicting_duplicate_ids": conflicting}
    return [
        _CheckOutcome("agg_trade_ids_continuous", gaps == 0 and conflicting == 0, dg.AssetCheckSeverity.WARN,
                      f"{r.symbol} {r.day}: {gaps} id gaps ({missing_ids} ids missing); "
                      f"{r.counts.get('duplicate_ids', 0)} duplicated ids dropped on load, {conflicting} of them with "
                      "conflicting contents (the earliest kept)", meta),
        _CheckOutcome("agg_trades_within_day", outside == 0, dg.AssetCheckSeverity.ERROR,
                      f"{r.symbol} {r.day}: {outside} trades outside the partition day",
                      {"symbol": r.symbol, "day": str(r.day), "rows_outside_day": int(outside)}),
    ]


@dg.asset(
    partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"}, retry_policy=RETRY, backfill_policy=SINGLE_RUN,
    check_specs=[_check_spec("agg_trade_ids_continuous", "agg_trades"),
                 _check_spec("agg_trades_within_day", "agg_trades")],
)
def agg_trades(context: dg.AssetExecutionContext, duckdb: DuckDBResource, market: MarketSource) -> dg.MaterializeResult:
    """Binance USD-M aggTrades, one row per aggregate trade (daily archive; monthly file as a fallback)."""
    results = _ingest_all(
        context, duckdb, market, "raw.agg_trades",
        lambda s, d: ArchiveFile("aggTrades", s, d),
        lambda csv, s, d, only_day: parsers.agg_trades_checked_select(csv, s, d, only_day),
        lambda s, d: ArchiveFile("aggTrades", s, d.replace(day=1), cadence="monthly"),
        check=_agg_trades_blocking, priced=True,
    )
    return _result(context, duckdb, "raw.agg_trades", "transact_time", results, _agg_trade_checks)


# ---------------------------------------------------------------------------------------------- klines
def _kline_checks(table: str, name: str):
    def checks(con, r: IngestResult) -> list[_CheckOutcome]:
        missing = _missing_check(name, r)
        if missing:
            return [missing]
        rows, interval = con.execute(
            f"SELECT count(*), any_value(interval) FROM {table} WHERE symbol = ? AND day = ? AND CAST(open_time AS DATE) = day",
            [r.symbol, r.day]).fetchone()
        expected = 86_400_000 // KLINE_INTERVAL_MS[interval]
        share = rows / expected
        return [_CheckOutcome(
            name, rows == expected, dg.AssetCheckSeverity.WARN if share >= 0.95 else dg.AssetCheckSeverity.ERROR,
            f"{r.symbol} {r.day}: {rows} of {expected} {interval} candles ({share:.1%})",
            {"symbol": r.symbol, "day": str(r.day), "rows": int(rows), "expected": int(expected), "interval": interval},
        )]
    return checks


def _kline_asset(name: str, kind: str, table: str, interval_attr: str, doc: str, priced: bool = True):
    check = f"{name}_complete_for_interval"

    @dg.asset(name=name, partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"},
              retry_policy=RETRY, backfill_policy=SINGLE_RUN, check_specs=[_check_spec(check, name)])
    def _asset(context: dg.AssetExecutionContext, duckdb: DuckDBResource, market: MarketSource) -> dg.MaterializeResult:
        interval = getattr(market, interval_attr)
        results = _ingest_all(
            context, duckdb, market, table,
            lambda s, d: ArchiveFile(kind, s, d, interval=interval),
            lambda csv, s, d, only_day: parsers.klines_select(csv, s, d, interval, kind=kind, only_day=only_day),
            lambda s, d: ArchiveFile(kind, s, d.replace(day=1), cadence="monthly", interval=interval),
            check=_klines_blocking(interval, priced, kind), priced=priced,
        )
        return _result(context, duckdb, table, "open_time", results, _kline_checks(table, check))

    _asset.__doc__ = doc
    return _asset


klines = _kline_asset("klines", "klines", "raw.klines", "kline_interval",
                      "Last-price klines (1m by default; 5m, 15m, 1h accepted); each row carries its interval.")
mark_price_klines = _kline_asset("mark_price_klines", "markPriceKlines", "raw.mark_price_klines", "mark_kline_interval",
                                 "Mark-price klines: liquidations trigger on mark price, so consumption uses these.")
premium_index_klines = _kline_asset(
    "premium_index_klines", "premiumIndexKlines", "raw.premium_index_klines", "mark_kline_interval",
    "Premium-index klines (the premium funding averages): a crowding signal of the `flow` variant.",
    priced=False)  # a premium is a ratio near 0, not a price: nothing to compare with the neighbouring days


# ---------------------------------------------------------------------------------------------- metrics
def _oi_checks(con, r: IngestResult) -> list[_CheckOutcome]:
    missing = _missing_check("open_interest_sampled_every_5m", r)
    if missing:  # every declared check must get a result, else Dagster rejects the MaterializeResult
        return [missing, _CheckOutcome("open_interest_not_forward_filled", False, dg.AssetCheckSeverity.WARN,
                                       missing.description, missing.metadata)]
    rows, stale = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE is_stale) FROM raw.open_interest WHERE symbol = ? AND day = ?",
        [r.symbol, r.day]).fetchone()
    meta = {"symbol": r.symbol, "day": str(r.day), "rows": int(rows), "expected_5m": 288, "stale_rows": int(stale)}
    if rows >= 288:
        sampling = _CheckOutcome("open_interest_sampled_every_5m", True, dg.AssetCheckSeverity.WARN,
                                 f"{r.symbol} {r.day}: {rows} OI samples", meta)
    else:
        severity = dg.AssetCheckSeverity.WARN if rows >= 24 else dg.AssetCheckSeverity.ERROR
        sampling = _CheckOutcome("open_interest_sampled_every_5m", False, severity,
                                 f"{r.symbol} {r.day}: {rows} OI samples of 288 (sparser OI is used as "
                                 "nearest-sample-before; accepted with a warning down to hourly)", meta)
    return [sampling, _CheckOutcome(
        "open_interest_not_forward_filled", stale == 0, dg.AssetCheckSeverity.WARN,
        f"{r.symbol} {r.day}: {stale} samples in runs of more than {parsers.STALE_OI_RUN_ROWS} identical OI values "
        "(forward-filled upstream; the model ignores them)", meta)]


@dg.asset(
    partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"}, retry_policy=RETRY, backfill_policy=SINGLE_RUN,
    check_specs=[_check_spec("open_interest_sampled_every_5m", "open_interest"),
                 _check_spec("open_interest_not_forward_filled", "open_interest")],
)
def open_interest(context: dg.AssetExecutionContext, duckdb: DuckDBResource, market: MarketSource) -> dg.MaterializeResult:
    """Open interest (base and USDT) and the long/short ratios from the daily `metrics` archive."""
    results = _ingest_all(
        context, duckdb, market, "raw.open_interest",
        lambda s, d: ArchiveFile("metrics", s, d),
        lambda csv, s, d, only_day: parsers.metrics_select(csv, s, d),
        check=_metrics_blocking, priced=True,
    )
    return _result(context, duckdb, "raw.open_interest", "create_time", results, _oi_checks)


# ---------------------------------------------------------------------------------------------- funding
def _funding_checks(con, r: IngestResult) -> list[_CheckOutcome]:
    missing = _missing_check("funding_settlements_match_interval", r)
    if missing:
        return [missing]
    rows, hours = con.execute(
        "SELECT count(*), max(funding_interval_hours) FROM raw.funding_rates WHERE symbol = ? AND day = ?",
        [r.symbol, r.day]).fetchone()
    if not rows:
        return [_CheckOutcome(
            "funding_settlements_match_interval", False, dg.AssetCheckSeverity.ERROR,
            f"{r.symbol} {r.day}: no settlement stored for the day ({r.file_name} has none on it)",
            {"symbol": r.symbol, "day": str(r.day), "rows": 0, "interval_hours": 0})]
    expected = 24 // hours
    return [_CheckOutcome(
        "funding_settlements_match_interval", rows == expected, dg.AssetCheckSeverity.WARN,
        f"{r.symbol} {r.day}: {rows} settlements, {expected} expected at a {hours}h interval",
        {"symbol": r.symbol, "day": str(r.day), "rows": int(rows), "interval_hours": int(hours)},
    )]


@dg.asset(
    partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"}, retry_policy=RETRY, backfill_policy=SINGLE_RUN,
    check_specs=[_check_spec("funding_settlements_match_interval", "funding_rates")],
)
def funding_rates(context: dg.AssetExecutionContext, duckdb: DuckDBResource, market: MarketSource) -> dg.MaterializeResult:
    """Settled funding rates of the day (monthly fundingRate archive), with the 8h-equivalent rate."""
    results = _ingest_all(
        context, duckdb, market, "raw.funding_rates",
        lambda s, d: ArchiveFile("fundingRate", s, d.replace(day=1), cadence="monthly"),
        lambda csv, s, d, only_day: parsers.funding_select(csv, s, d),
        check=_funding_blocking,
    )
    return _result(context, duckdb, "raw.funding_rates", "funding_time", results, _funding_checks)
