"""Readers for the seed tests of liquidation-math.md §9 and the OI check: the maps and books
(`model.position_distribution`, `model.liquidation_levels`, `model.liquidation_heatmap`, `model.flow_book`)
beside `model.position_signals`, `raw.funding_rates` and the simulator's `truth.positions` (DDL in schema.py)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.warehouse.grid_sql import bin_id_sql


def distribution_oi(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> pd.DataFrame:
    """variant, estimated_usd (Σ long + short of the position distribution), oi_usd (model.position_signals,
    NULL when missing) of the day, by variant."""
    return con.execute("""
        SELECT d.variant, sum(d.long_usd + d.short_usd) AS estimated_usd, any_value(s.oi_usd) AS oi_usd
        FROM model.position_distribution d
        LEFT JOIN model.position_signals s ON s.symbol = d.symbol AND s.day = d.day
        WHERE d.symbol = ? AND d.day = ?
        GROUP BY d.variant ORDER BY d.variant""", [symbol, day]).df()


def book_oi(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, variant: str) -> pd.DataFrame:
    """estimated_usd (a variant's unscaled Σ notional of model.flow_book at the end of the day), oi_usd (of
    model.position_signals): one row, none when the day has no such book."""
    return con.execute("""
        SELECT sum(b.notional_usd) AS estimated_usd, any_value(s.oi_usd) AS oi_usd
        FROM model.flow_book b LEFT JOIN model.position_signals s ON s.symbol = b.symbol AND s.day = b.day
        WHERE b.symbol = ? AND b.day = ? AND b.variant = ? HAVING count(*) > 0""", [symbol, day, variant]).df()


def levels_with_mark_bin(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date,
                         grid: PriceGrid) -> pd.DataFrame:
    """day, variant, side, bin_id, price, notional_usd of every liquidation level of days start..end, with the
    day's mark_price (model.position_signals) and its bin on `grid` as mark_bin (NULL without a mark > 0)."""
    return con.execute(f"""
        SELECT l.day, l.variant, l.side, l.bin_id, l.price, l.notional_usd, s.mark_price,
               CASE WHEN s.mark_price > 0 THEN {bin_id_sql(grid, 's.mark_price')} END AS mark_bin
        FROM model.liquidation_levels l
        LEFT JOIN model.position_signals s ON s.symbol = l.symbol AND s.day = l.day
        WHERE l.symbol = ? AND l.day BETWEEN ? AND ?""", [symbol, start, end]).df()


def _per_settlement(con: duckdb.DuckDBPyConnection, shares_sql: str, params: dict) -> pd.DataFrame:
    """Mean of a sampled long share (`shares_sql` yields t, long_share) over each settlement interval
    [previous settlement, settlement), beside that settlement's rate: the rate Binance computes from the
    premium over exactly that interval. Only settlements in ($t0, $t1] of $symbol."""
    return con.execute(f"""
        WITH f AS (
            SELECT funding_time, any_value(funding_rate_8h) AS funding_rate_8h,
                   any_value(funding_interval_hours) AS hours
            FROM raw.funding_rates WHERE symbol = $symbol AND funding_time > $t0 AND funding_time <= $t1
            GROUP BY funding_time),
        s AS ({shares_sql})
        SELECT f.funding_time AS settle_time, any_value(f.funding_rate_8h) AS funding_rate_8h,
               avg(s.long_share) AS long_share, count(*) AS samples
        FROM s ASOF JOIN f ON f.funding_time > s.t
        WHERE f.funding_time - s.t <= to_hours(f.hours)
        GROUP BY 1 ORDER BY 1""", params).df()


def heatmap_long_share_per_settlement(con: duckdb.DuckDBPyConnection, symbol: str, variant: str,
                                      t0: dt.datetime, t1: dt.datetime) -> pd.DataFrame:
    """settle_time, funding_rate_8h, long_share, samples: a variant's heatmap long share Σlong / Σ(long +
    short) per snapshot in [t0, t1), averaged over each settlement interval of the settlements in (t0, t1]."""
    return _per_settlement(con, """
        SELECT snapshot_time AS t, sum(notional_usd) FILTER (WHERE side = 'long') / nullif(sum(notional_usd), 0)
               AS long_share
        FROM model.liquidation_heatmap
        WHERE symbol = $symbol AND variant = $variant AND snapshot_time >= $t0 AND snapshot_time < $t1
        GROUP BY 1""", {"symbol": symbol, "variant": variant, "t0": t0, "t1": t1})


def true_long_share_per_settlement(con: duckdb.DuckDBPyConnection, symbol: str, t0: dt.datetime,
                                   t1: dt.datetime, sample_minutes: int) -> pd.DataFrame:
    """The same for the simulator's truth: the long share of the notional (at entry) of the positions open at
    each sample instant (every `sample_minutes` from t0), averaged per settlement interval."""
    return _per_settlement(con, f"""
        WITH ts AS (SELECT unnest(generate_series($t0, $t1 - INTERVAL 1 MINUTE,
                                                  INTERVAL {int(sample_minutes)} MINUTE)) AS t)
        SELECT ts.t, sum(p.quantity * p.entry_price) FILTER (WHERE p.side = 'long')
                     / nullif(sum(p.quantity * p.entry_price), 0) AS long_share
        FROM ts JOIN truth.positions p
          ON p.symbol = $symbol AND p.open_time <= ts.t AND (p.close_time IS NULL OR p.close_time > ts.t)
        GROUP BY ts.t""", {"symbol": symbol, "t0": t0, "t1": t1})
