"""Data-quality score of the raw inputs behind a graded period: the share of each input present, scored only
over the inputs the configured model needs.

Used by the validation report (a score below 95 % caps the grade letter at C). A kline-only setup
(`LIQ_PROFILE_SOURCE=klines`, chosen on purpose) does not need aggTrades, so their absence does not lower
its score; hourly open interest is scored against hourly sampling, not against 288 five-minute samples.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from liq_pipeline import config
from liq_pipeline.config import KLINE_INTERVAL_MS
from liq_pipeline.warehouse.schema import ensure_tables

#: Inputs every configuration needs, plus aggTrades when volume profiles are built from them.
BASE_INPUTS = ("klines", "mark_price_klines", "open_interest")
OI_SAMPLES_PER_DAY_5M = 288


def _oi_samples_per_day(con: duckdb.DuckDBPyConnection, symbol: str) -> int:
    """Samples per day of the OI series' own cadence (median spacing: 5 min → 288, 1 h → 24)."""
    step_s = con.execute("""
        SELECT median(step) FROM (
            SELECT epoch(create_time) - lag(epoch(create_time)) OVER (PARTITION BY day ORDER BY create_time) AS step
            FROM raw.open_interest WHERE symbol = ? AND day IN (SELECT day FROM _dq_days))
        WHERE step > 0""", [symbol]).fetchone()[0]
    if not step_s:
        return OI_SAMPLES_PER_DAY_5M
    return int(min(OI_SAMPLES_PER_DAY_5M, max(1, round(86_400 / float(step_s)))))


def data_quality(con: duckdb.DuckDBPyConnection, symbol: str, days: list[dt.date],
                 profile_source: str | None = None) -> dict:
    """Share of the raw input present for the graded days, each 0..1; `score` is the weakest needed component.

    - klines / mark_price_klines: rows / (days × candles per day) of the interval with the most rows;
    - open_interest: non-stale rows / (days × samples per day of the series' cadence);
    - agg_trades: rows / (max id − min id + 1) per day, summed: 1 means no aggregate-trade id is missing;
      needed only when `profile_source` (default: LIQ_PROFILE_SOURCE) is "aggTrades".
    `scored` lists the components the score is the minimum of.
    """
    ensure_tables(con, "raw.klines", "raw.mark_price_klines", "raw.open_interest", "raw.agg_trades")
    n_days = len(days)
    if not n_days:
        return {"days": 0, "score": None}
    source = profile_source or config.env_choice("LIQ_PROFILE_SOURCE", "aggTrades", config.PROFILE_SOURCES)
    con.execute("CREATE OR REPLACE TEMP TABLE _dq_days AS SELECT unnest(?::DATE[]) AS day", [list(days)])
    out: dict = {"days": n_days}
    for table in ("raw.klines", "raw.mark_price_klines"):
        rows = con.execute(f"""SELECT interval, count(*) FROM {table}
                               WHERE symbol = ? AND day IN (SELECT day FROM _dq_days) GROUP BY interval""",
                           [symbol]).fetchall()
        shares = [min(1.0, n / (n_days * 86_400_000 / KLINE_INTERVAL_MS[i])) for i, n in rows if i in KLINE_INTERVAL_MS]
        out[table.split(".")[1]] = max(shares) if shares else 0.0
    per_day = _oi_samples_per_day(con, symbol)
    oi_rows = con.execute("""SELECT count(*) FROM raw.open_interest WHERE symbol = ? AND NOT is_stale
                             AND day IN (SELECT day FROM _dq_days)""", [symbol]).fetchone()[0]
    out["open_interest"] = min(1.0, oi_rows / (per_day * n_days))
    out["open_interest_samples_per_day"] = per_day
    present, span, trade_days = con.execute("""
        SELECT coalesce(sum(n), 0), coalesce(sum(span), 0), count(*) FROM (
            SELECT day, count(*) AS n, max(agg_trade_id) - min(agg_trade_id) + 1 AS span
            FROM raw.agg_trades WHERE symbol = ? AND day IN (SELECT day FROM _dq_days) GROUP BY day)""",
        [symbol]).fetchone()
    # Days without any aggTrades count as fully missing.
    out["agg_trades"] = (present / span) * (trade_days / n_days) if span else 0.0
    con.execute("DROP TABLE IF EXISTS _dq_days")
    needed = BASE_INPUTS + (("agg_trades",) if source == "aggTrades" else ())
    out["profile_source"] = source
    out["scored"] = ", ".join(needed)
    out["score"] = float(min(out[k] for k in needed))
    return out
