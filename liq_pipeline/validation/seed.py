"""The seed tests of liquidation-math.md §9 over the warehouse: OI conservation, directional accuracy,
long share against funding, and the data-quality score of the raw inputs. Plain frames and dicts."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.config import KLINE_INTERVAL_MS, MODEL, ModelParams
from liq_pipeline.model import scoring
from liq_pipeline.model.grid import grid_for
from liq_pipeline.validation.common import ensure_read_tables

#: The variant whose long/short split uses no funding input: the only non-circular one to correlate with
#: funding (liquidation-math.md §9.2).
NON_CIRCULAR_VARIANT = "ofi"
OI_TOLERANCE_PCT = 1.0


def oi_conservation(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> pd.DataFrame:
    """Per variant: Σ(long + short) of the position distribution against the actual OI of position_signals.

    Columns: variant, estimated_usd, oi_usd, error_pct (nan when the OI is missing). liquidation-math.md
    §9.3: measured on the full distribution, before any consumption.
    """
    ensure_read_tables(con)
    frame = con.execute("""
        SELECT d.variant, sum(d.long_usd + d.short_usd) AS estimated_usd, any_value(s.oi_usd) AS oi_usd
        FROM model.position_distribution d
        LEFT JOIN model.position_signals s ON s.symbol = d.symbol AND s.day = d.day
        WHERE d.symbol = ? AND d.day = ?
        GROUP BY d.variant ORDER BY d.variant""", [symbol, day]).df()
    oi = frame["oi_usd"].astype("float64").to_numpy()
    est = frame["estimated_usd"].astype("float64").to_numpy()
    ok = np.isfinite(oi) & (oi > 0)
    frame["error_pct"] = np.where(ok, np.abs(est - oi) / np.where(ok, oi, 1.0) * 100.0, np.nan)
    return frame


def level_directions(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date,
                     params: ModelParams = MODEL) -> pd.DataFrame:
    """Every liquidation level of days start..end with its mark bin and whether it lies on the right side.

    Columns: day, variant, side, bin_id, price, notional_usd, mark_price, mark_bin, ok (§9.4). Levels of a
    day without a mark price get mark_bin NULL and ok False: they could not be shown to be right.
    """
    ensure_read_tables(con)
    grid = grid_for(symbol, params)
    frame = con.execute(f"""
        SELECT l.day, l.variant, l.side, l.bin_id, l.price, l.notional_usd, s.mark_price,
               CASE WHEN s.mark_price > 0 THEN {grid.sql_bin_id('s.mark_price')} END AS mark_bin
        FROM model.liquidation_levels l
        LEFT JOIN model.position_signals s ON s.symbol = l.symbol AND s.day = l.day
        WHERE l.symbol = ? AND l.day BETWEEN ? AND ?""", [symbol, start, end]).df()
    known = frame["mark_bin"].notna().to_numpy()
    mark_bin = frame["mark_bin"].fillna(0).astype("int64").to_numpy()
    frame["ok"] = known & scoring.directional_ok(frame["side"].to_numpy(dtype=str), frame["bin_id"].to_numpy(), mark_bin)
    return frame


def daily_long_ratios(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date,
                      variant: str) -> pd.DataFrame:
    """Per day: the variant's long ratio Σlong / Σ(long+short) and its notional-weighted pre-funding share,
    beside the daily mean settled funding (8h-equivalent) and the funding-implied ratio 0.5 + 0.3·tanh(1000·f).

    Columns: day, long_ratio, long_ratio_pre_funding, funding_rate_8h, implied_long_ratio.
    """
    ensure_read_tables(con)
    frame = con.execute("""
        WITH est AS (
            SELECT day, sum(long_usd) / nullif(sum(long_usd + short_usd), 0) AS long_ratio,
                   sum(long_share_pre_funding * (long_usd + short_usd)) / nullif(sum(long_usd + short_usd), 0)
                       AS long_ratio_pre_funding
            FROM model.position_distribution
            WHERE symbol = ? AND variant = ? AND day BETWEEN ? AND ?
            GROUP BY day),
        funding AS (
            SELECT CAST(funding_time AS DATE) AS day, avg(funding_rate_8h) AS funding_rate_8h
            FROM raw.funding_rates
            WHERE symbol = ? AND funding_time >= ? AND funding_time < ?
            GROUP BY 1)
        SELECT est.day, est.long_ratio, est.long_ratio_pre_funding, funding.funding_rate_8h
        FROM est LEFT JOIN funding USING (day) ORDER BY est.day""",
        [symbol, variant, start, end, symbol, start, end + dt.timedelta(days=1)]).df()
    frame["implied_long_ratio"] = scoring.funding_implied_long_ratio(frame["funding_rate_8h"].astype("float64"))
    return frame


def funding_correlation(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date,
                        variant: str = NON_CIRCULAR_VARIANT) -> tuple[scoring.Correlation, pd.DataFrame]:
    """Pearson r between a variant's daily pre-funding long ratio and the funding-implied ratio (§9.1-§9.2).

    The pre-funding share is what the split looked like before the funding step, so the correlation never
    measures the model's own construction; for the `ofi` variant it equals its final split.
    """
    daily = daily_long_ratios(con, symbol, start, end, variant)
    return scoring.pearson(daily["long_ratio_pre_funding"].to_numpy(dtype=np.float64),
                           daily["implied_long_ratio"].to_numpy(dtype=np.float64)), daily


def data_quality(con: duckdb.DuckDBPyConnection, symbol: str, days: list[dt.date]) -> dict:
    """Share of the raw input present for the graded days, each 0..1; `score` is the weakest component.

    - klines / mark_price_klines: rows / (days × candles per day) of the interval with the most rows;
    - open_interest: non-stale metrics rows / (288 × days) (one sample every 5 min);
    - agg_trades: rows / (max id − min id + 1) per day, summed: 1 means no aggregate-trade id is missing.
    """
    ensure_read_tables(con)
    n_days = len(days)
    if not n_days:
        return {"days": 0, "score": None}
    con.execute("CREATE OR REPLACE TEMP TABLE _dq_days AS SELECT unnest(?::DATE[]) AS day", [list(days)])
    out: dict = {"days": n_days}
    for table in ("raw.klines", "raw.mark_price_klines"):
        rows = con.execute(f"""SELECT interval, count(*) FROM {table}
                               WHERE symbol = ? AND day IN (SELECT day FROM _dq_days) GROUP BY interval""",
                           [symbol]).fetchall()
        shares = [min(1.0, n / (n_days * 86_400_000 / KLINE_INTERVAL_MS[i])) for i, n in rows if i in KLINE_INTERVAL_MS]
        out[table.split(".")[1]] = max(shares) if shares else 0.0
    oi_rows = con.execute("""SELECT count(*) FROM raw.open_interest WHERE symbol = ? AND NOT is_stale
                             AND day IN (SELECT day FROM _dq_days)""", [symbol]).fetchone()[0]
    out["open_interest"] = min(1.0, oi_rows / (288 * n_days))
    present, span = con.execute("""
        SELECT coalesce(sum(n), 0), coalesce(sum(span), 0) FROM (
            SELECT day, count(*) AS n, max(agg_trade_id) - min(agg_trade_id) + 1 AS span
            FROM raw.agg_trades WHERE symbol = ? AND day IN (SELECT day FROM _dq_days) GROUP BY day)""",
        [symbol]).fetchone()
    trade_days = con.execute("SELECT count(DISTINCT day) FROM raw.agg_trades WHERE symbol = ? AND day IN "
                             "(SELECT day FROM _dq_days)", [symbol]).fetchone()[0]
    # Days without any aggTrades count as fully missing.
    out["agg_trades"] = (present / span) * (trade_days / n_days) if span else 0.0
    con.execute("DROP TABLE IF EXISTS _dq_days")
    parts = [out[k] for k in ("klines", "mark_price_klines", "open_interest", "agg_trades")]
    out["score"] = float(min(parts))
    return out
