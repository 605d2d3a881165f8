"""The SQL that builds the volume-profile tables (model.volume_profile_daily, model.volume_profile_baseline,
model.ofi_bins; DDL in schema.py) and reads trade sizes, on the price grid (liquidation-math.md §8.1).

Each builder returns one SELECT, parameterised by the named parameters `$symbol` and `$day` (plus
`$window_start` for the baseline), with exactly the columns of its table, so an asset writes it with
`warehouse.io.replace_partition` and the benchmark times the very same statements. The formulas' numpy
twins are in model/profile.py.
"""

from __future__ import annotations

from liq_pipeline.config import KLINE_INTERVAL_MS, MODEL, ModelParams
from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.warehouse.grid_sql import bin_high_sql, bin_id_sql, bin_low_sql

#: `source` values written to model.volume_profile_daily.
SOURCE_AGG_TRADES = "aggTrades"
KLINES_SOURCE_PREFIX = "klines_"


def daily_profile_sql(grid: PriceGrid) -> str:
    """Volume profile of one symbol-day from `raw.agg_trades`, one row per grid bin that traded.

    Per bin: notional Σ price·quantity (USD); taker buy/sell split by `is_buyer_maker` (false = the taker
    bought, Binance aggTrades semantics); VWAP = Σ price·qty / Σ qty (USD); trade count (aggregate trades);
    last trade time (naive UTC). The split is always known for aggTrades. Parameters: `$symbol`, `$day`.
    """
    bin_id = bin_id_sql(grid, "price")
    return f"""
        WITH t AS (
            SELECT {bin_id} AS bin_id, price * quantity AS notional, quantity, is_buyer_maker, transact_time
            FROM raw.agg_trades
            WHERE symbol = $symbol AND day = $day AND price > 0 AND quantity > 0
        )
        SELECT $symbol AS symbol, CAST($day AS DATE) AS day, bin_id,
               {bin_low_sql(grid, 'bin_id')} AS price_low, {bin_high_sql(grid, 'bin_id')} AS price_high,
               sum(notional) AS notional_usd,
               coalesce(sum(notional) FILTER (WHERE NOT is_buyer_maker), 0) AS buy_notional_usd,
               coalesce(sum(notional) FILTER (WHERE is_buyer_maker), 0) AS sell_notional_usd,
               coalesce(sum(quantity) FILTER (WHERE NOT is_buyer_maker), 0) AS buy_qty,
               coalesce(sum(quantity) FILTER (WHERE is_buyer_maker), 0) AS sell_qty,
               sum(notional) / sum(quantity) AS vwap,
               count(*) AS trade_count,
               true AS split_known,
               max(transact_time) AS last_trade_time,
               '{SOURCE_AGG_TRADES}' AS source
        FROM t
        GROUP BY bin_id
        ORDER BY bin_id
    """


def _interval_rank_sql() -> str:
    """SQL CASE giving each stored kline interval its length in ms, so the finest one can be chosen."""
    whens = " ".join(f"WHEN '{name}' THEN {ms}" for name, ms in KLINE_INTERVAL_MS.items())
    return f"CASE interval {whens} ELSE NULL END"


def klines_profile_sql(grid: PriceGrid) -> str:
    """Volume profile of one symbol-day from `raw.klines`, the fallback (or cheap) source.

    Uses the finest interval stored for the day (1m best; 5m, 15m, 1h accepted). Each candle's volume is
    placed in the bin of its typical price (high + low + close)/3. Taker buy = `taker_buy_volume` (base)
    and `taker_buy_quote_volume` (USD), sell = total − buy. A candle without taker columns, or whose
    taker_buy_volume is exactly half its volume, carries no split evidence (the archive writes exactly
    half when the split was not recorded), so its volume counts in `notional_usd` but not in buy/sell;
    a bin with no candle of known split has NULL buy/sell and `split_known = false`. Notional is
    `quote_volume` (USD), or volume × typical price when that column is empty. `last_trade_time` is the
    close time of the bin's last candle with volume. Parameters: `$symbol`, `$day`.
    """
    typical = "(high + low + close) / 3.0"
    return f"""
        WITH day_klines AS (
            SELECT *, {_interval_rank_sql()} AS interval_ms
            FROM raw.klines WHERE symbol = $symbol AND day = $day
        ), finest AS (
            SELECT * FROM day_klines
            WHERE interval_ms = (SELECT min(interval_ms) FROM day_klines) AND volume > 0
        ), c AS (
            SELECT {bin_id_sql(grid, typical)} AS bin_id, volume, close_time, trade_count, interval,
                   coalesce(quote_volume, volume * {typical}) AS notional,
                   taker_buy_volume IS NOT NULL AND taker_buy_quote_volume IS NOT NULL
                       AND taker_buy_volume <> volume / 2.0 AS known,
                   taker_buy_volume AS buy_qty, volume - taker_buy_volume AS sell_qty,
                   taker_buy_quote_volume AS buy_notional,
                   coalesce(quote_volume, volume * {typical}) - taker_buy_quote_volume AS sell_notional
            FROM finest
        )
        SELECT $symbol AS symbol, CAST($day AS DATE) AS day, bin_id,
               {bin_low_sql(grid, 'bin_id')} AS price_low, {bin_high_sql(grid, 'bin_id')} AS price_high,
               sum(notional) AS notional_usd,
               sum(buy_notional) FILTER (WHERE known) AS buy_notional_usd,
               sum(sell_notional) FILTER (WHERE known) AS sell_notional_usd,
               sum(buy_qty) FILTER (WHERE known) AS buy_qty,
               sum(sell_qty) FILTER (WHERE known) AS sell_qty,
               sum(notional) / sum(volume) AS vwap,
               coalesce(sum(trade_count), 0) AS trade_count,
               bool_or(known) AS split_known,
               max(close_time) AS last_trade_time,
               '{KLINES_SOURCE_PREFIX}' || any_value(interval) AS source
        FROM c
        GROUP BY bin_id
        ORDER BY bin_id
    """


def baseline_sql() -> str:
    """The window profile: the stored daily profiles of `$window_start` … `$day` summed per bin.

    One GROUP BY over at most `window_days` small daily profiles, so a daily refresh never re-scans
    trades. VWAP over the window = Σ notional / Σ (notional / daily VWAP) (the base quantity). Buy/sell
    sums only include days whose split is known (SQL sum skips NULL); `days_in_window` counts the days
    that had a profile. Parameters: `$symbol`, `$day`, `$window_start`.
    """
    return """
        WITH w AS (
            SELECT * FROM model.volume_profile_daily
            WHERE symbol = $symbol AND day BETWEEN $window_start AND $day
        )
        SELECT $symbol AS symbol, CAST($day AS DATE) AS day, bin_id,
               any_value(price_low) AS price_low, any_value(price_high) AS price_high,
               sum(notional_usd) AS notional_usd,
               sum(buy_notional_usd) AS buy_notional_usd, sum(sell_notional_usd) AS sell_notional_usd,
               sum(buy_qty) AS buy_qty, sum(sell_qty) AS sell_qty,
               sum(notional_usd) / sum(notional_usd / vwap) AS vwap,
               sum(trade_count) AS trade_count,
               bool_or(split_known) AS split_known,
               max(last_trade_time) AS last_trade_time,
               CAST((SELECT count(DISTINCT day) FROM w) AS INTEGER) AS days_in_window
        FROM w
        GROUP BY bin_id
        ORDER BY bin_id
    """


def ofi_sql(params: ModelParams = MODEL) -> str:
    """OFI and long probability per bin of the window profile (liquidation-math.md §8.1).

    OFI = (buy_qty − sell_qty) / (buy_qty + sell_qty) on base quantity; 0 where the split is unknown or
    the bin has no split volume. long_prob = 0.5 + amplitude·tanh(gain·OFI) (0.35 and 1.5 by default).
    Parameters: `$symbol`, `$day`.
    """
    known = "(split_known AND coalesce(buy_qty, 0) + coalesce(sell_qty, 0) > 0)"
    ofi = f"CASE WHEN {known} THEN (buy_qty - sell_qty) / (buy_qty + sell_qty) ELSE 0.0 END"
    return f"""
        WITH b AS (
            SELECT bin_id, (price_low + price_high) / 2.0 AS price_mid, buy_qty, sell_qty,
                   {known} AS split_known, {ofi} AS ofi
            FROM model.volume_profile_baseline WHERE symbol = $symbol AND day = $day
        )
        SELECT $symbol AS symbol, CAST($day AS DATE) AS day, bin_id, price_mid, buy_qty, sell_qty, ofi,
               0.5 + {params.ofi_amplitude!r} * tanh({params.ofi_gain!r} * ofi) AS long_prob, split_known
        FROM b ORDER BY bin_id
    """


def trade_notional_sql() -> str:
    """Notional (USD) of every aggregate trade of `$symbol` on `$day`: the input of the size buckets."""
    return "SELECT price * quantity AS notional_usd FROM raw.agg_trades WHERE symbol = $symbol AND day = $day"


def kline_mean_trade_notional_sql() -> str:
    """Mean trade notional (USD) of each candle of `$symbol` on `$day` (quote volume / trade count): the
    rough size distribution used when a day has no aggTrades."""
    return """
        SELECT quote_volume / trade_count AS notional_usd FROM raw.klines
        WHERE symbol = $symbol AND day = $day AND trade_count > 0 AND quote_volume > 0
    """
