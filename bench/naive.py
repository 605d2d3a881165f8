"""The naive approaches the benchmark compares against: what a quick script does.

- OFI over the 30-day window: load every trade of the window into pandas and loop over the price bins.

It gives the same numbers as the pipeline (checked by the benchmark and by test_bench.py).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from liq_pipeline.model.grid import PriceGrid


def load_window_trades(con: duckdb.DuckDBPyConnection, symbol: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    return con.execute("SELECT price, quantity, is_buyer_maker FROM raw.agg_trades WHERE symbol = ? "
                       "AND day BETWEEN ? AND ?", [symbol, first, last]).df()


def ofi_per_bin_loop(trades: pd.DataFrame, grid: PriceGrid) -> dict[int, float]:
    """OFI = (buy − sell)/(buy + sell) on base quantity, one pandas filter per bin."""
    trades = trades.assign(bin_id=grid.bin_id(trades["price"].to_numpy()))
    out = {}
    for bin_id in sorted(trades["bin_id"].unique()):
        in_bin = trades[trades["bin_id"] == bin_id]
        buy = in_bin.loc[~in_bin["is_buyer_maker"], "quantity"].sum()
        sell = in_bin.loc[in_bin["is_buyer_maker"], "quantity"].sum()
        out[int(bin_id)] = (buy - sell) / (buy + sell) if buy + sell > 0 else 0.0
    return out


