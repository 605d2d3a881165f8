"""Readers of realized liquidations per bar for the backtest and the scorecard: the simulator's
`truth.liquidations`, the forceOrder events of `raw.realized_liquidations` and the providers' per-bar totals of
`raw.realized_liquidation_bars` (DDL in schema.py). Times are naive UTC, amounts USD."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

#: The realized sources, in the order the backtest's `auto` tries them.
SOURCES = ("truth", "events", "bars")


def _bucket(bar_minutes: int, column: str) -> str:
    return f"time_bucket(INTERVAL '{int(bar_minutes)} minutes', {column})"


def realized_per_bar(con: duckdb.DuckDBPyConnection, source: str, symbol: str, start: dt.datetime,
                     end: dt.datetime, bar_minutes: int) -> pd.DataFrame:
    """bar_start, real_long, real_short (USD; NULL for a side without a row) of one source over [start, end):
    `truth` (simulator, complete), `events` (every source's forceOrder rows, one per (time, side, price,
    quantity)), `bars` (a bar repeated by two files counts once). Tables must exist."""
    queries = {
        "truth": f"""SELECT {_bucket(bar_minutes, 'liq_time')} AS bar_start,
                            sum(notional_usd) FILTER (WHERE side = 'long') AS real_long,
                            sum(notional_usd) FILTER (WHERE side = 'short') AS real_short
                     FROM truth.liquidations WHERE symbol = $1 AND liq_time >= $2 AND liq_time < $3 GROUP BY 1""",
        "events": f"""SELECT {_bucket(bar_minutes, 'trade_time')} AS bar_start,
                             sum(notional_usd) FILTER (WHERE side = 'long') AS real_long,
                             sum(notional_usd) FILTER (WHERE side = 'short') AS real_short
                      FROM (SELECT DISTINCT ON (trade_time, side, price, quantity) trade_time, side, notional_usd
                            FROM raw.realized_liquidations
                            WHERE symbol = $1 AND trade_time >= $2 AND trade_time < $3)
                      GROUP BY 1""",
        "bars": f"""SELECT {_bucket(bar_minutes, 'bar_start')} AS bar_start, sum(long_usd) AS real_long,
                           sum(short_usd) AS real_short
                    FROM (SELECT bar_start, max(long_usd) AS long_usd, max(short_usd) AS short_usd
                          FROM raw.realized_liquidation_bars
                          WHERE symbol = $1 AND bar_start >= $2 AND bar_start < $3 GROUP BY bar_start)
                    GROUP BY 1""",
    }
    return con.execute(queries[source], [symbol, start, end]).df()


def bar_rows(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.datetime | dt.date,
             end: dt.datetime | dt.date) -> int:
    """Rows of raw.realized_liquidation_bars of `symbol` with start <= bar_start < end."""
    return int(con.execute("SELECT count(*) FROM raw.realized_liquidation_bars WHERE symbol = ? AND bar_start >= ? "
                           "AND bar_start < ?", [symbol, start, end]).fetchone()[0])
