"""DDL of every warehouse table. Every partitioned table carries `symbol VARCHAR` and `day DATE`.

Column types are explicit so that pandas 2 and 3 frames, Arrow tables and CSV reads all land the same.
Times are naive UTC TIMESTAMPs (millisecond precision); prices and amounts are DOUBLE (USDT or base asset,
as the names say).
"""

from __future__ import annotations

from liq_pipeline.warehouse.catalog import known_tables, root_of

_KLINE_COLUMNS = """
    symbol VARCHAR NOT NULL,
    day DATE NOT NULL,
    interval VARCHAR NOT NULL,
    open_time TIMESTAMP NOT NULL,
    open DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    low DOUBLE NOT NULL,
    close DOUBLE NOT NULL,
    volume DOUBLE,
    close_time TIMESTAMP NOT NULL,
    quote_volume DOUBLE,
    trade_count BIGINT,
    taker_buy_volume DOUBLE,
    taker_buy_quote_volume DOUBLE,
    source VARCHAR NOT NULL
"""

#: The columns of one cell of a flow book (model/flow.py), shared by the book and its survival candidates.
_FLOW_CELL_COLUMNS = """\
        open_time TIMESTAMP NOT NULL,
        side VARCHAR NOT NULL,
        entry_price DOUBLE NOT NULL,
        lev_bucket INTEGER NOT NULL,
        leverage DOUBLE NOT NULL,
        size_usd DOUBLE NOT NULL,
        mmr DOUBLE NOT NULL,
        lp_open DOUBLE NOT NULL,
        funding_paid DOUBLE NOT NULL,
        weight DOUBLE NOT NULL,
        notional_usd DOUBLE NOT NULL
"""


TABLES: dict[str, str] = {
    # ---- raw: one row per archive row, deduplicated and sorted on the natural key -------------------
    "raw.agg_trades": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        agg_trade_id BIGINT NOT NULL,
        price DOUBLE NOT NULL,
        quantity DOUBLE NOT NULL,
        first_trade_id BIGINT,
        last_trade_id BIGINT,
        transact_time TIMESTAMP NOT NULL,
        is_buyer_maker BOOLEAN NOT NULL
    """,
    "raw.klines": _KLINE_COLUMNS,
    "raw.mark_price_klines": _KLINE_COLUMNS,
    "raw.premium_index_klines": _KLINE_COLUMNS,
    "raw.open_interest": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        create_time TIMESTAMP NOT NULL,
        sum_open_interest DOUBLE,
        sum_open_interest_value DOUBLE,
        count_toptrader_long_short_ratio DOUBLE,
        sum_toptrader_long_short_ratio DOUBLE,
        count_long_short_ratio DOUBLE,
        sum_taker_long_short_vol_ratio DOUBLE,
        is_stale BOOLEAN NOT NULL,
        source VARCHAR NOT NULL
    """,
    "raw.funding_rates": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        calc_time TIMESTAMP NOT NULL,
        funding_time TIMESTAMP NOT NULL,
        funding_interval_hours INTEGER NOT NULL,
        last_funding_rate DOUBLE NOT NULL,
        funding_rate_8h DOUBLE NOT NULL,
        source VARCHAR NOT NULL
    """,
    # Which file fed which partition, with its checksum: re-ingest when Binance replaces a file.
    "raw.ingest_log": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        table_name VARCHAR NOT NULL,
        file_name VARCHAR,
        sha256 VARCHAR,
        status VARCHAR NOT NULL,
        rows BIGINT NOT NULL,
        ingested_at TIMESTAMP NOT NULL
    """,
    # Liquidations seen on Binance's forceOrder stream (live recorder) or imported by a user. The stream
    # publishes at most one liquidation per symbol per second, so totals are a lower bound.
    "raw.realized_liquidations": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        event_time TIMESTAMP,
        trade_time TIMESTAMP NOT NULL,
        side VARCHAR NOT NULL,
        price DOUBLE NOT NULL,
        avg_price DOUBLE,
        quantity DOUBLE NOT NULL,
        notional_usd DOUBLE NOT NULL,
        source VARCHAR NOT NULL
    """,
    # ---- truth: the simulator's ground truth (partitioned by the day a position opened / a liquidation) --
    "truth.positions": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        position_id BIGINT NOT NULL,
        side VARCHAR NOT NULL,
        open_time TIMESTAMP NOT NULL,
        close_time TIMESTAMP,
        entry_price DOUBLE NOT NULL,
        quantity DOUBLE NOT NULL,
        leverage DOUBLE NOT NULL,
        isolated_margin_usd DOUBLE NOT NULL,
        liq_price DOUBLE NOT NULL,
        bracket INTEGER NOT NULL,
        outcome VARCHAR NOT NULL,
        margin_mode VARCHAR,
        account_balance_usd DOUBLE
    """,
    # Every position open at the end of `day` with the margin and liquidation price then in force
    # (funding and margin top-ups move them); providers' holdings carry position_id = -account.
    "truth.open_positions": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        position_id BIGINT NOT NULL,
        population VARCHAR NOT NULL,
        side VARCHAR NOT NULL,
        margin_mode VARCHAR NOT NULL,
        entry_price DOUBLE NOT NULL,
        quantity DOUBLE NOT NULL,
        leverage DOUBLE,
        isolated_margin_usd DOUBLE NOT NULL,
        liq_price DOUBLE,
        bracket INTEGER NOT NULL,
        funding_paid_usd DOUBLE NOT NULL,
        mark_price DOUBLE NOT NULL
    """,
    "truth.liquidations": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        position_id BIGINT NOT NULL,
        liq_time TIMESTAMP NOT NULL,
        side VARCHAR NOT NULL,
        price DOUBLE NOT NULL,
        quantity DOUBLE NOT NULL,
        notional_usd DOUBLE NOT NULL
    """,
    # ---- model: derived tables ------------------------------------------------------------------------
    "model.volume_profile_daily": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        bin_id BIGINT NOT NULL,
        price_low DOUBLE NOT NULL,
        price_high DOUBLE NOT NULL,
        notional_usd DOUBLE NOT NULL,
        buy_notional_usd DOUBLE,
        sell_notional_usd DOUBLE,
        buy_qty DOUBLE,
        sell_qty DOUBLE,
        vwap DOUBLE NOT NULL,
        trade_count BIGINT NOT NULL,
        split_known BOOLEAN NOT NULL,
        last_trade_time TIMESTAMP NOT NULL,
        source VARCHAR NOT NULL
    """,
    "model.volume_profile_baseline": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        bin_id BIGINT NOT NULL,
        price_low DOUBLE NOT NULL,
        price_high DOUBLE NOT NULL,
        notional_usd DOUBLE NOT NULL,
        buy_notional_usd DOUBLE,
        sell_notional_usd DOUBLE,
        buy_qty DOUBLE,
        sell_qty DOUBLE,
        vwap DOUBLE NOT NULL,
        trade_count BIGINT NOT NULL,
        split_known BOOLEAN NOT NULL,
        last_trade_time TIMESTAMP NOT NULL,
        days_in_window INTEGER NOT NULL
    """,
    "model.ofi_bins": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        bin_id BIGINT NOT NULL,
        price_mid DOUBLE NOT NULL,
        buy_qty DOUBLE,
        sell_qty DOUBLE,
        ofi DOUBLE NOT NULL,
        long_prob DOUBLE NOT NULL,
        split_known BOOLEAN NOT NULL
    """,
    # The real-time signals a distribution was built from: one row per symbol-day (the live layer plugs
    # the same record in from REST).
    "model.position_signals": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        as_of TIMESTAMP NOT NULL,
        mark_price DOUBLE,
        oi_usd DOUBLE,
        oi_24h_ago_usd DOUBLE,
        oi_delta DOUBLE,
        funding_rate_8h DOUBLE,
        flags VARCHAR NOT NULL
    """,
    "model.position_distribution": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        variant VARCHAR NOT NULL,
        as_of TIMESTAMP NOT NULL,
        bin_id BIGINT NOT NULL,
        price_mid DOUBLE NOT NULL,
        long_usd DOUBLE NOT NULL,
        short_usd DOUBLE NOT NULL,
        long_share_pre_funding DOUBLE NOT NULL
    """,
    "model.liquidation_levels": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        variant VARCHAR NOT NULL,
        as_of TIMESTAMP NOT NULL,
        side VARCHAR NOT NULL,
        bin_id BIGINT NOT NULL,
        price DOUBLE NOT NULL,
        notional_usd DOUBLE NOT NULL,
        collateral_usd DOUBLE NOT NULL
    """,
    "model.liquidation_heatmap": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        variant VARCHAR NOT NULL,
        snapshot_time TIMESTAMP NOT NULL,
        side VARCHAR NOT NULL,
        bin_id BIGINT NOT NULL,
        price DOUBLE NOT NULL,
        notional_usd DOUBLE NOT NULL
    """,
    # One row per heatmap snapshot, written in the same transaction as its model.liquidation_heatmap
    # partition: `liq heatmap` finds the snapshot to show here (a few thousand rows) instead of scanning the
    # heatmap's millions.
    "model.heatmap_snapshots": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        variant VARCHAR NOT NULL,
        snapshot_time TIMESTAMP NOT NULL,
        levels BIGINT NOT NULL,
        long_usd DOUBLE NOT NULL,
        short_usd DOUBLE NOT NULL
    """,
    "model.liquidation_zones": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        variant VARCHAR NOT NULL,
        as_of TIMESTAMP NOT NULL,
        side VARCHAR NOT NULL,
        zone_rank INTEGER NOT NULL,
        centroid_price DOUBLE NOT NULL,
        price_low DOUBLE NOT NULL,
        price_high DOUBLE NOT NULL,
        notional_usd DOUBLE NOT NULL,
        distance_pct DOUBLE NOT NULL,
        share_of_side DOUBLE NOT NULL
    """,
    # ---- the book engine (model/flow.py): every variant's book and per-step bookkeeping, what the learned
    # variant learned --------------------------------------------------------------------------------------
    # The book at the end of the day: one row per cell (open hour, side, entry price, leverage bucket, size).
    "model.flow_book": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        variant VARCHAR NOT NULL,
""" + _FLOW_CELL_COLUMNS,
    # The candidate books of the survival fit (one per candidate half-life, FlowParams.survival_candidates),
    # same cells as model.flow_book: each evolves beside the main book with its own H and τ.
    "model.flow_candidate_books": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        half_life_hours DOUBLE NOT NULL,
""" + _FLOW_CELL_COLUMNS,
    # Snapshots of each variant's liquidation map (scaled by the leveraged share), every heatmap step.
    "model.flow_snapshots": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        variant VARCHAR NOT NULL,
        snapshot_time TIMESTAMP NOT NULL,
        side VARCHAR NOT NULL,
        bin_id BIGINT NOT NULL,
        price DOUBLE NOT NULL,
        notional_usd DOUBLE NOT NULL
    """,
    # Book notional consumed by the mark path per step, side and leverage bucket, and per unit of the
    # bucket's mix weight (what the calibration regresses public liquidations on).
    "model.flow_steps": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        variant VARCHAR NOT NULL,
        step_end TIMESTAMP NOT NULL,
        side VARCHAR NOT NULL,
        leverage DOUBLE NOT NULL,
        consumed_usd DOUBLE NOT NULL,
        consumed_per_weight_usd DOUBLE NOT NULL
    """,
    # Every parameter the flow variant learned (or took from its prior) as of the end of the day.
    "model.flow_parameters": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        parameter VARCHAR NOT NULL,
        side VARCHAR NOT NULL,
        value DOUBLE,
        source VARCHAR NOT NULL,
        detail VARCHAR NOT NULL
    """,
    # ---- validation (issue 6) -------------------------------------------------------------------------
    # Per-bar liquidation totals as commercial providers export them (timestamp, long_usd, short_usd),
    # imported from user files; `source` = "file:<name>". A bar covers [bar_start, bar_end).
    "raw.realized_liquidation_bars": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        bar_start TIMESTAMP NOT NULL,
        bar_end TIMESTAMP NOT NULL,
        long_usd DOUBLE NOT NULL,
        short_usd DOUBLE NOT NULL,
        source VARCHAR NOT NULL
    """,
    # Every figure of a monthly validation report, long format: one row per (symbol, variant, test,
    # metric); `day` is the first day of the report month, `value` NULL when undefined.
    "model.validation_results": """
        symbol VARCHAR NOT NULL,
        day DATE NOT NULL,
        variant VARCHAR NOT NULL,
        test VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE,
        verdict VARCHAR,
        detail VARCHAR
    """,
}


def ddl(table: str) -> str:
    """CREATE SCHEMA/TABLE IF NOT EXISTS statements for one table."""
    schema = table.split(".")[0]
    return f"CREATE SCHEMA IF NOT EXISTS {schema}; CREATE TABLE IF NOT EXISTS {table} ({TABLES[table]});"


def ensure_tables(con, *tables: str) -> None:
    """Create the named tables (all when none are named); in the parquet storage mode they are views that
    exist from the start (warehouse/parquet.py), so there is nothing to create."""
    if root_of(con) is not None:
        return
    known = known_tables(con)  # created once per connection (catalog.py)
    for table in tables or tuple(TABLES):
        if table not in known:
            con.execute(ddl(table))
            known.add(table)
