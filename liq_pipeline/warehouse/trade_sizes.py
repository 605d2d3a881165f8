"""The trade sizes of one symbol-day, read from the raw tables, and the size buckets chosen from them
(model/sizes.py): aggTrades, else klines' mean trade per candle, else the size prior with the true cause.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np

from liq_pipeline.model.sizes import SizeChoice, choose_sizes
from liq_pipeline.warehouse import profile_sql
from liq_pipeline.warehouse.io import table_exists


def _rows(con: duckdb.DuckDBPyConnection, table: str, symbol: str, day: dt.date) -> int:
    if not table_exists(con, table):
        return 0
    return int(con.execute(f"SELECT count(*) FROM {table} WHERE symbol = ? AND day = ?", [symbol, day]).fetchone()[0])


def day_size_choice(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, n_buckets: int,
                    agg_trade_notional_usd: np.ndarray | None = None) -> SizeChoice:
    """Size buckets of (symbol, day): from the day's aggTrades; else from the klines' mean trade notional
    per candle (quote volume / trade count); else the prior, flagged with what was missing.

    `agg_trade_notional_usd`: the notional of every aggTrade of the day, when the caller has read them
    already (the day then has aggTrades; the buckets do not depend on their order).

    Third-party klines (freqtrade, ccxt) carry `count = 0`: they have volume but no trade sizes, and so
    land on the prior with that reason.
    """
    params = {"symbol": symbol, "day": day}
    if agg_trade_notional_usd is not None or _rows(con, "raw.agg_trades", symbol, day):
        x = (agg_trade_notional_usd if agg_trade_notional_usd is not None
             else con.execute(profile_sql.trade_notional_sql(), params).fetchnumpy()["notional_usd"])
        return choose_sizes(np.asarray(x, np.float64), n_buckets, f"aggTrades of {day}",
                            f"the aggTrades of {symbol} {day} have no positive notional")
    klines = _rows(con, "raw.klines", symbol, day)
    if klines:
        x = con.execute(profile_sql.kline_mean_trade_notional_sql(), params).fetchnumpy()["notional_usd"]
        return choose_sizes(np.asarray(x, np.float64), n_buckets,
                            f"mean trade size per candle of klines {day} (no aggTrades)",
                            f"no aggTrades for {symbol} {day}, and none of its {klines:,} klines has a trade count "
                            "(count = 0, as in third-party klines)")
    return choose_sizes(None, n_buckets, "", f"no aggTrades and no klines for {symbol} {day}")


def day_size_flag(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, n_buckets: int,
                  agg_trade_notional_usd: np.ndarray | None = None) -> str | None:
    """`day_size_choice(...).flag` (None unless the buckets are the prior) without building the buckets: when
    the day's aggTrades are given and one has a positive notional they are not the prior, and sorting them into
    buckets only to drop the buckets cost the 30-day heatmap of make bench 0.4 s of CPU (issue 29)."""
    if agg_trade_notional_usd is not None:
        x = np.asarray(agg_trade_notional_usd, np.float64)
        if np.any(np.isfinite(x) & (x > 0)):
            return None
    return day_size_choice(con, symbol, day, n_buckets, agg_trade_notional_usd).flag
