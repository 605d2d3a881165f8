"""Ground truth of the simulated market: the positions and liquidations the estimator is scored against.

Reads the simulator's parquet files (`market.truth_dir`) for the partition's day into `truth.positions`
(speculative positions opened that day, as opened), `truth.open_positions` (every position open at the
end of that day, speculators' and providers', with the margin and liquidation price then in force) and
`truth.liquidations` (liquidations that happened that day).

Ground truth exists only for the simulated source. With a mirror or Binance source these assets do not
fail (a full-graph run on real data must not break on them): they leave the tables untouched and
report `status: skipped` in their metadata.
"""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from liq_pipeline import partitions
from liq_pipeline.assets.event_order import newest_partition_last
from liq_pipeline.resources import MarketSource
from liq_pipeline.warehouse.truth_store import (
    add_new_columns,
    load_truth_partition,
    partition_head,
    truth_summary,
)

GROUP = "truth"
SKIPPED = "skipped: ground truth exists only for the simulated source (market.kind = 'simulated')"


def _truth_file(market: MarketSource, kind: str, symbol: str) -> Path:
    path = market.truth_dir / kind / f"{symbol}.parquet"
    if not path.exists():
        raise dg.Failure(
            description=f"no simulator ground truth at {path}: run `liq simulate` (or the demo) for {symbol} "
            f"with sim_dir={market.sim_dir!r} first",
            allow_retries=False,
        )
    return path


def _load(context: dg.AssetExecutionContext, duckdb: DuckDBResource, market: MarketSource, kind: str,
          table: str, columns: str, order_by: str) -> dg.MaterializeResult:
    if not market.is_simulated:
        context.log.info(SKIPPED)
        return dg.MaterializeResult(metadata={"status": SKIPPED, "source": market.kind})
    rows: dict[str, int] = {}
    with duckdb.get_connection() as con:
        add_new_columns(con, table)
        for symbol, day in partitions.symbol_days(context):
            path = str(_truth_file(market, kind, symbol))
            rows[f"{symbol} {day}"] = load_truth_partition(con, table, symbol, day, path, columns, order_by)
        # The preview and summary show the run's last partition (the newest: newest_partition_last), read once.
        preview = _markdown(partition_head(con, table, symbol, day, order_by))
        summary = _summary(con, table, symbol, day)
    return dg.MaterializeResult(metadata={
        "status": "loaded",
        "rows": dg.MetadataValue.int(sum(rows.values())),
        "rows_by_partition": dg.MetadataValue.json(rows),
        "summary": dg.MetadataValue.md(summary),
        "preview": dg.MetadataValue.md(preview),
    })


def _summary(con, table: str, symbol: str, day) -> str:
    """Counts and notional by side (and outcome for positions) of the last partition, as markdown."""
    return f"{symbol} {day}\n\n" + _markdown(truth_summary(con, table, symbol, day))


def _markdown(frame) -> str:
    """A small pandas frame as a markdown table (no optional dependency needed)."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


@dg.asset(partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"},
          backfill_policy=dg.BackfillPolicy.single_run())
@newest_partition_last
def true_positions(context: dg.AssetExecutionContext, duckdb: DuckDBResource, market: MarketSource) -> dg.MaterializeResult:
    """Every simulated speculative position opened on the partition's day, with its exact liquidation price
    and tier at opening, its margin mode and account balance, and how it ended ('open', 'closed',
    'liquidated')."""
    return _load(context, duckdb, market, "positions", "truth.positions",
                 "symbol, day, position_id, side, open_time, close_time, entry_price, quantity, leverage, "
                 "isolated_margin_usd, liq_price, bracket, outcome, margin_mode, account_balance_usd", "position_id")


@dg.asset(partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"},
          backfill_policy=dg.BackfillPolicy.single_run())
@newest_partition_last
def true_open_positions(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                        market: MarketSource) -> dg.MaterializeResult:
    """Every position open at the end of the partition's day, speculators' (by position) and providers'
    (market makers and basis traders, by account: position_id = -account), with the margin, liquidation
    price (nan: none) and tier then in force and the funding paid so far."""
    return _load(context, duckdb, market, "open_positions", "truth.open_positions",
                 "symbol, day, position_id, population, side, margin_mode, entry_price, quantity, leverage, "
                 "isolated_margin_usd, liq_price, bracket, funding_paid_usd, mark_price", "position_id")


@dg.asset(partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"},
          backfill_policy=dg.BackfillPolicy.single_run())
@newest_partition_last
def true_liquidations(context: dg.AssetExecutionContext, duckdb: DuckDBResource, market: MarketSource) -> dg.MaterializeResult:
    """Every simulated liquidation on the partition's day: time, side, exact liquidation price (USDT),
    quantity (base asset) and notional (USDT), complete (not sampled like the forceOrder stream)."""
    return _load(context, duckdb, market, "liquidations", "truth.liquidations",
                 "symbol, day, position_id, liq_time, side, price, quantity, notional_usd",
                 "liq_time, position_id")
