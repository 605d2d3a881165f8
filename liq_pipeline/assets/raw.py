"""Raw Binance tables, one partition per symbol × day, with their data-quality checks.

Each asset fetches one archive file through MarketSource (simulated mirror, local mirror or
data.binance.vision), parses it in DuckDB and replaces its partition atomically. The checks are emitted
with the materialization (so they always know their partition) and are readable in the UI.
"""


import datetime as dt
import tempfile
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from liq_pipeline import partitions
from liq_pipeline.assets.check_outcomes import (
    CheckOutcome,
    checks_only_failure,
    missing_check,
    per_symbol_results,
    raw_asset,
)
from liq_pipeline.config import KLINE_INTERVAL_MS, ConfigError
from liq_pipeline.market import parsers
from liq_pipeline.market.archive import ArchiveError, NotYetPublished
from liq_pipeline.market.formats import ArchiveFile
from liq_pipeline.market.ingest import IngestResult, prepare_partition, store_partition
from liq_pipeline.pipeline.raw_checks import (
    agg_trades_blocking,
    funding_blocking,
    klines_blocking,
    metrics_blocking,
)
from liq_pipeline.resources import MarketSource
from liq_pipeline.warehouse.readers.raw_quality import (
    agg_trade_id_gaps,
    agg_trades_outside_day,
    funding_rows,
    kline_rows,
    open_interest_rows,
    time_range,
)
from liq_pipeline.warehouse.reference_prices import neighbour_price

GROUP = "raw"
RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)


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
    checks_only_failure(context)
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


def _result(context, duckdb: DuckDBResource, table: str, time_col: str, results: list[IngestResult],
            checks) -> dg.MaterializeResult:
    """Metadata (rows, time range, checksum per partition) plus the check results of the run."""
    per_partition, outcomes, ranges = [], [], []
    with duckdb.get_connection() as con:
        for r in results:
            lo, hi = time_range(con, table, time_col, r.symbol, r.day)
            ranges.append((lo, hi))
            per_partition.append(f"| {r.symbol} | {r.day} | {r.rows:,} | {lo} | {hi} | {r.status} | `{(r.sha256 or '')[:16]}` |")
            outcomes += checks(con, r)
    table_md = "| symbol | day | rows | first | last | status | sha256 |\n|---|---|---|---|---|---|---|\n" + "\n".join(per_partition)
    first = results[0]
    metadata = {
        "rows": dg.MetadataValue.int(sum(r.rows for r in results)),
        "partitions": dg.MetadataValue.md(table_md),
        "source_file": dg.MetadataValue.text(first.file_name or ""),
        "source_sha256": dg.MetadataValue.text(first.sha256 or ""),
        "checksum_verified": dg.MetadataValue.bool(all(r.verified for r in results if r.status != "missing")),
        "time_range": dg.MetadataValue.text(" → ".join(_time_range_all(ranges))),
        "unverified_files": dg.MetadataValue.int(sum(1 for r in results if r.status != "missing" and not r.verified)),
    }
    warnings = [f"{r.symbol} {r.day}: {w}" for r in results for w in r.warnings]
    if warnings:  # also in the run log; here they stay with the materialization
        metadata["warnings"] = dg.MetadataValue.md("\n".join(f"- {w}" for w in warnings))
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=per_symbol_results(outcomes, context.op_def.name,
                                         {k.name for k in context.selected_asset_check_keys}),
    )


def _time_range_all(ranges: list[tuple[str, str]]) -> tuple[str, str]:
    """First and last time over the partitions' (first, last) ranges (empty partitions have none)."""
    los = [lo for lo, _ in ranges if lo]
    his = [hi for _, hi in ranges if hi]
    return (min(los) if los else "", max(his) if his else "")


# ---------------------------------------------------------------------------------------------- aggTrades
def _agg_trade_checks(con, r: IngestResult) -> list[CheckOutcome]:
    missing = missing_check("agg_trade_ids_continuous", r)
    if missing:
        return [missing, CheckOutcome("agg_trades_within_day", False, dg.AssetCheckSeverity.ERROR,
                                       missing.description, missing.metadata)]
    gaps, missing_ids, lo_id, hi_id = agg_trade_id_gaps(con, r.symbol, r.day)
    outside = agg_trades_outside_day(con, r.symbol, r.day)
    conflicting = r.counts.get("conflicting_duplicate_ids", 0)
    meta = {"symbol": r.symbol, "day": str(r.day), "id_range": f"{lo_id} … {hi_id}", "gaps": int(gaps),
            "missing_ids": int(missing_ids), "duplicate_ids": r.counts.get("duplicate_ids", 0),
            "conflicting_duplicate_ids": conflicting}
    return [
        CheckOutcome("agg_trade_ids_continuous", gaps == 0 and conflicting == 0, dg.AssetCheckSeverity.WARN,
                      f"{r.symbol} {r.day}: {gaps} id gaps ({missing_ids} ids missing); "
                      f"{r.counts.get('duplicate_ids', 0)} duplicated ids dropped on load, {conflicting} of them with "
                      "conflicting contents (the earliest kept)", meta),
        CheckOutcome("agg_trades_within_day", outside == 0, dg.AssetCheckSeverity.ERROR,
                      f"{r.symbol} {r.day}: {outside} trades outside the partition day",
                      {"symbol": r.symbol, "day": str(r.day), "rows_outside_day": int(outside)}),
    ]


@raw_asset("agg_trades", ["agg_trade_ids_continuous", "agg_trades_within_day"], GROUP, RETRY)
def agg_trades(context: dg.AssetExecutionContext, duckdb: DuckDBResource, market: MarketSource) -> dg.MaterializeResult:
    """Binance USD-M aggTrades, one row per aggregate trade (daily archive; monthly file as a fallback)."""
    results = _ingest_all(
        context, duckdb, market, "raw.agg_trades",
        lambda s, d: ArchiveFile("aggTrades", s, d),
        lambda csv, s, d, only_day: parsers.agg_trades_checked_select(csv, s, d, only_day),
        lambda s, d: ArchiveFile("aggTrades", s, d.replace(day=1), cadence="monthly"),
        check=agg_trades_blocking, priced=True,
    )
    return _result(context, duckdb, "raw.agg_trades", "transact_time", results, _agg_trade_checks)


# ---------------------------------------------------------------------------------------------- klines
def _kline_checks(table: str, name: str):
    def checks(con, r: IngestResult) -> list[CheckOutcome]:
        missing = missing_check(name, r)
        if missing:
            return [missing]
        rows, interval = kline_rows(con, table, r.symbol, r.day)
        expected = 86_400_000 // KLINE_INTERVAL_MS[interval]
        share = rows / expected
        return [CheckOutcome(
            name, rows == expected, dg.AssetCheckSeverity.WARN if share >= 0.95 else dg.AssetCheckSeverity.ERROR,
            f"{r.symbol} {r.day}: {rows} of {expected} {interval} candles ({share:.1%})",
            {"symbol": r.symbol, "day": str(r.day), "rows": int(rows), "expected": int(expected), "interval": interval},
        )]
    return checks


def _kline_asset(name: str, kind: str, table: str, interval_attr: str, doc: str, priced: bool = True):
    check = f"{name}_complete_for_interval"

    def _asset(context: dg.AssetExecutionContext, duckdb: DuckDBResource, market: MarketSource) -> dg.MaterializeResult:
        interval = getattr(market, interval_attr)
        results = _ingest_all(
            context, duckdb, market, table,
            lambda s, d: ArchiveFile(kind, s, d, interval=interval),
            lambda csv, s, d, only_day: parsers.klines_select(csv, s, d, interval, kind=kind, only_day=only_day),
            lambda s, d: ArchiveFile(kind, s, d.replace(day=1), cadence="monthly", interval=interval),
            check=klines_blocking(interval, priced, kind), priced=priced,
        )
        return _result(context, duckdb, table, "open_time", results, _kline_checks(table, check))

    return raw_asset(name, [check], GROUP, RETRY, doc)(_asset)


klines = _kline_asset("klines", "klines", "raw.klines", "kline_interval",
                      "Last-price klines (1m by default; 5m, 15m, 1h accepted); each row carries its interval.")
mark_price_klines = _kline_asset("mark_price_klines", "markPriceKlines", "raw.mark_price_klines", "mark_kline_interval",
                                 "Mark-price klines: liquidations trigger on mark price, so consumption uses these.")
premium_index_klines = _kline_asset(
    "premium_index_klines", "premiumIndexKlines", "raw.premium_index_klines", "mark_kline_interval",
    "Premium-index klines (the premium funding averages): a crowding signal of the `flow` variant.",
    priced=False)  # a premium is a ratio near 0, not a price: nothing to compare with the neighbouring days


# ---------------------------------------------------------------------------------------------- metrics
def _oi_checks(con, r: IngestResult) -> list[CheckOutcome]:
    missing = missing_check("open_interest_sampled_every_5m", r)
    if missing:  # every declared check must get a result, else Dagster rejects the MaterializeResult
        return [missing, CheckOutcome("open_interest_not_forward_filled", False, dg.AssetCheckSeverity.WARN,
                                       missing.description, missing.metadata)]
    rows, stale = open_interest_rows(con, r.symbol, r.day)
    meta = {"symbol": r.symbol, "day": str(r.day), "rows": int(rows), "expected_5m": 288, "stale_rows": int(stale)}
    if rows >= 288:
        sampling = CheckOutcome("open_interest_sampled_every_5m", True, dg.AssetCheckSeverity.WARN,
                                 f"{r.symbol} {r.day}: {rows} OI samples", meta)
    else:
        severity = dg.AssetCheckSeverity.WARN if rows >= 24 else dg.AssetCheckSeverity.ERROR
        sampling = CheckOutcome("open_interest_sampled_every_5m", False, severity,
                                 f"{r.symbol} {r.day}: {rows} OI samples of 288 (sparser OI is used as "
                                 "nearest-sample-before; accepted with a warning down to hourly)", meta)
    return [sampling, CheckOutcome(
        "open_interest_not_forward_filled", stale == 0, dg.AssetCheckSeverity.WARN,
        f"{r.symbol} {r.day}: {stale} samples in runs of more than {parsers.STALE_OI_RUN_ROWS} identical OI values "
        "(forward-filled upstream; the model ignores them)", meta)]


@raw_asset("open_interest", ["open_interest_sampled_every_5m", "open_interest_not_forward_filled"], GROUP, RETRY)
def open_interest(context: dg.AssetExecutionContext, duckdb: DuckDBResource, market: MarketSource) -> dg.MaterializeResult:
    """Open interest (base and USDT) and the long/short ratios from the daily `metrics` archive."""
    results = _ingest_all(
        context, duckdb, market, "raw.open_interest",
        lambda s, d: ArchiveFile("metrics", s, d),
        lambda csv, s, d, only_day: parsers.metrics_select(csv, s, d),
        check=metrics_blocking, priced=True,
    )
    return _result(context, duckdb, "raw.open_interest", "create_time", results, _oi_checks)


# ---------------------------------------------------------------------------------------------- funding
def _funding_checks(con, r: IngestResult) -> list[CheckOutcome]:
    missing = missing_check("funding_settlements_match_interval", r)
    if missing:
        return [missing]
    rows, hours = funding_rows(con, r.symbol, r.day)
    if not rows:
        return [CheckOutcome(
            "funding_settlements_match_interval", False, dg.AssetCheckSeverity.ERROR,
            f"{r.symbol} {r.day}: no settlement stored for the day ({r.file_name} has none on it)",
            {"symbol": r.symbol, "day": str(r.day), "rows": 0, "interval_hours": 0})]
    expected = 24 // hours
    return [CheckOutcome(
        "funding_settlements_match_interval", rows == expected, dg.AssetCheckSeverity.WARN,
        f"{r.symbol} {r.day}: {rows} settlements, {expected} expected at a {hours}h interval",
        {"symbol": r.symbol, "day": str(r.day), "rows": int(rows), "interval_hours": int(hours)},
    )]


@raw_asset("funding_rates", ["funding_settlements_match_interval"], GROUP, RETRY)
def funding_rates(context: dg.AssetExecutionContext, duckdb: DuckDBResource, market: MarketSource) -> dg.MaterializeResult:
    """Settled funding rates of the day (monthly fundingRate archive), with the 8h-equivalent rate."""
    results = _ingest_all(
        context, duckdb, market, "raw.funding_rates",
        lambda s, d: ArchiveFile("fundingRate", s, d.replace(day=1), cadence="monthly"),
        lambda csv, s, d, only_day: parsers.funding_select(csv, s, d),
        check=funding_blocking,
    )
    return _result(context, duckdb, "raw.funding_rates", "funding_time", results, _funding_checks)
