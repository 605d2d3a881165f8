"""Live-layer Dagster definitions: REST gap fill, the archive-published sensor, the bracket refresh.

Thin wrappers over liq_pipeline.pipeline.live. The REST client is configured from the environment
(`LIQ_FAPI_URL`, `LIQ_WEIGHT_BUDGET`, `BINANCE_API_KEY`, `BINANCE_API_SECRET`).
"""

# No `from __future__ import annotations` here: Dagster checks the `context` annotation's type at
# definition time and rejects the string form.
import datetime as dt
import os

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource

from liq_pipeline import config, partitions
from liq_pipeline.market.archive import ArchiveError, MissingArchiveFile, NotYetPublished
from liq_pipeline.market.formats import ArchiveFile
from liq_pipeline.market.rest import FapiClient
from liq_pipeline.pipeline.live import fill_day_from_rest, refresh_brackets, rest_filled_partitions
from liq_pipeline.resources import MarketSource

GROUP = "live"
#: Raw table → (key of its asset in assets/raw.py, the archive file that replaces the REST rows).
ARCHIVE_FOR_TABLE = {
    "raw.klines": (dg.AssetKey("klines"), lambda s, d, m: ArchiveFile("klines", s, d, interval=m.kline_interval)),
    "raw.mark_price_klines": (dg.AssetKey("mark_price_klines"),
                              lambda s, d, m: ArchiveFile("markPriceKlines", s, d, interval=m.mark_kline_interval)),
    "raw.agg_trades": (dg.AssetKey("agg_trades"), lambda s, d, m: ArchiveFile("aggTrades", s, d)),
    "raw.open_interest": (dg.AssetKey("open_interest"), lambda s, d, m: ArchiveFile("metrics", s, d)),
    "raw.funding_rates": (dg.AssetKey("funding_rates"),
                          lambda s, d, m: ArchiveFile("fundingRate", s, d.replace(day=1), cadence="monthly")),
}
#: Archive lookups per sensor tick; the cursor rotates through the backlog so every partition gets its turn.
MAX_CHECKS_PER_TICK = 20


@dg.asset(partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"})
def rest_gap_fill(context: dg.AssetExecutionContext, duckdb: DuckDBResource, market: MarketSource) -> dg.MaterializeResult:
    """Raw klines, mark klines, aggTrades, OI and funding of days the archive has not published yet, from
    Binance REST (rows tagged source='rest', ingest_log status 'rest'). `archive_day_published_sensor`
    re-materializes the raw assets from the archive once the day appears there."""
    lines = []
    total = 0
    with FapiClient.from_env() as client, duckdb.get_connection() as con:
        for symbol, day in partitions.symbol_days(context):
            result = fill_day_from_rest(con, client, symbol, day, kline_interval=market.kline_interval,
                                        mark_kline_interval=market.mark_kline_interval)
            for table, rows in result.rows.items():
                lines.append(f"| {symbol} | {day} | {table} | {rows:,} | |")
                total += rows
            for table, why in result.skipped.items():
                lines.append(f"| {symbol} | {day} | {table} | 0 | skipped: {why} |")
                context.log.warning(f"{symbol} {day} {table} skipped: {why}")
        throttled = client.throttled_s
    return dg.MaterializeResult(metadata={
        "rows": dg.MetadataValue.int(total),
        "partitions": dg.MetadataValue.md("| symbol | day | table | rows | note |\n|---|---|---|---|---|\n" + "\n".join(lines)),
        "fapi_url": dg.MetadataValue.text(client.base_url),
        "throttled_s": dg.MetadataValue.float(throttled),
    })


@dg.sensor(
    target=[spec[0] for spec in ARCHIVE_FOR_TABLE.values()],
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def archive_day_published_sensor(context: dg.SensorEvaluationContext, duckdb: DuckDBResource, market: MarketSource):
    """For partitions filled from REST, check whether the archive has published the day; if so, request
    the raw assets of those tables for that partition (the archive ingest then replaces the REST rows and
    overwrites the 'rest' ingest_log entry, so the partition is not requested again)."""
    try:
        with duckdb.get_connection() as con:
            pending = rest_filled_partitions(con)
    except duckdb_lib.IOException as e:
        # Another process holds the single-writer DuckDB file; the next tick tries again.
        yield dg.SkipReason(f"warehouse busy: {e}")
        return
    if pending.empty:
        yield dg.SkipReason("no partition is filled from REST")
        return
    pending["key"] = pending["day"].astype(str) + "|" + pending["symbol"]
    keys = sorted(pending["key"].unique())
    after = [k for k in keys if k > (context.cursor or "")]
    batch = (after + [k for k in keys if k not in after])[:MAX_CHECKS_PER_TICK]
    client = market.client()
    requested, waiting = 0, []
    for key in batch:
        day_text, symbol = key.split("|", 1)
        day = dt.date.fromisoformat(day_text)
        ready = []
        for table in pending.loc[pending["key"] == key, "table_name"]:
            if table not in ARCHIVE_FOR_TABLE:
                continue
            asset_key, spec_for = ARCHIVE_FOR_TABLE[table]
            try:
                client.fetch(spec_for(symbol, day, market))
            except (NotYetPublished, MissingArchiveFile):
                waiting.append(f"{symbol} {day} {table}")
                continue
            except ArchiveError as e:
                context.log.warning(f"{symbol} {day} {table}: archive check failed ({e}); retried next tick")
                continue
            ready.append(asset_key)
        if ready:
            requested += 1
            yield dg.RunRequest(
                run_key=f"archive-published:{key}:{','.join(sorted(k.to_user_string() for k in ready))}",
                partition_key=partitions.key_for(symbol, day),
                asset_selection=ready,
                tags={"liq/reason": "archive day published, replacing REST gap fill"},
            )
    context.update_cursor(batch[-1])
    if not requested:
        yield dg.SkipReason(f"none of {len(batch)} REST-filled partitions is in the archive yet "
                            f"({len(waiting)} files waiting)")


@dg.asset(group_name=GROUP, kinds={"binance"})
def leverage_brackets(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Today's maintenance-margin tiers of every configured symbol from the signed leverageBracket endpoint,
    stored as dated tables under `data_dir()/brackets/` (read by margin.load_bracket_tables). Without
    BINANCE_API_KEY/BINANCE_API_SECRET it skips and says so: the shipped dated tables are used instead."""
    client = FapiClient.from_env()
    if not client.has_keys:
        reason = ("BINANCE_API_KEY and BINANCE_API_SECRET are not set; leverageBracket is a signed USER_DATA "
                  "endpoint, so the shipped dated tables in liq_pipeline/reference/brackets.json stay in use")
        context.log.warning(f"leverage_brackets skipped: {reason}")
        return dg.MaterializeResult(metadata={"skipped": dg.MetadataValue.bool(True),
                                              "reason": dg.MetadataValue.text(reason)})
    today = dt.datetime.now(dt.UTC).date()
    out_dir = config.data_dir() / "brackets"
    with client:
        paths = refresh_brackets(client, config.configured_symbols(), out_dir, today)
    return dg.MaterializeResult(metadata={
        "skipped": dg.MetadataValue.bool(False),
        "as_of": dg.MetadataValue.text(today.isoformat()),
        "files": dg.MetadataValue.md("\n".join(f"- `{os.fspath(p)}`" for p in paths)),
    })
