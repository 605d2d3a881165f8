"""One busy simulated-by-hand day (many small trades, mark candles, rising OI, the previous day's book) and a
warehouse holding it in a chosen physical row order: the determinism and query-path tests."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.model.grid import grid_for
from liq_pipeline.warehouse.schema import ensure_tables

SYMBOL = "BTCUSDT"
DAY = dt.date(2026, 1, 5)
GRID = grid_for(SYMBOL)
VARIANTS = ("hybrid", "ofi")


def busy_day_tables(seed: int = 11) -> dict[str, pd.DataFrame]:
    """One day of many small trades (hundreds per step and price bin), mark candles, rising OI, and the
    previous day's position distribution and levels."""
    rng = np.random.default_rng(seed)
    start = dt.datetime.combine(DAY, dt.time())
    minutes = pd.date_range(start, periods=1440, freq="1min")
    close = 100_000 * np.exp(np.cumsum(rng.normal(0, 4e-4, 1440)))
    candles = pd.DataFrame({
        "symbol": SYMBOL, "day": DAY, "interval": "1m", "open_time": minutes, "open": close, "high": close * 1.0005,
        "low": close * 0.9995, "close": close, "volume": 1.0, "close_time": minutes + pd.Timedelta(milliseconds=59_999),
        "quote_volume": close, "trade_count": 10, "taker_buy_volume": 0.5, "taker_buy_quote_volume": close / 2,
        "source": "test"})
    n = 60_000
    at = np.sort(rng.integers(0, 86_400_000, n))
    price = close[at // 60_000] * (1 + rng.normal(0, 2e-4, n))
    trades = pd.DataFrame({
        "symbol": SYMBOL, "day": DAY, "agg_trade_id": np.arange(n), "price": price,
        "quantity": np.round(rng.lognormal(-4, 1.5, n), 3) + 0.001, "first_trade_id": np.arange(n),
        "last_trade_id": np.arange(n), "transact_time": start + pd.to_timedelta(at, unit="ms"),
        "is_buyer_maker": rng.random(n) < 0.5})
    oi_t = pd.date_range(start - dt.timedelta(days=1), periods=2 * 288, freq="5min")
    oi_usd = 8e9 * np.exp(np.cumsum(rng.normal(2e-4, 1e-3, oi_t.size)))
    oi = pd.DataFrame({"symbol": SYMBOL, "day": oi_t.date, "create_time": oi_t, "sum_open_interest": oi_usd / 1e5,
                       "sum_open_interest_value": oi_usd, "is_stale": False, "source": "test"})
    prev = DAY - dt.timedelta(days=1)
    bins = np.unique(GRID.bin_id(close))
    dist = pd.concat([pd.DataFrame({
        "symbol": SYMBOL, "day": prev, "variant": v, "as_of": start - dt.timedelta(minutes=1), "bin_id": bins,
        "price_mid": GRID.mid(bins), "long_usd": rng.uniform(1e6, 1e8, bins.size),
        "short_usd": rng.uniform(1e6, 1e8, bins.size), "long_share_pre_funding": 0.5}) for v in VARIANTS])
    liq_bins = np.unique(GRID.bin_id(close * 0.9).tolist() + GRID.bin_id(close * 1.1).tolist())
    levels = pd.concat([pd.DataFrame({
        "symbol": SYMBOL, "day": prev, "variant": v, "as_of": start - dt.timedelta(minutes=1),
        "side": np.where(GRID.mid(liq_bins) < 100_000, "long", "short"), "bin_id": liq_bins,
        "price": GRID.mid(liq_bins), "notional_usd": rng.uniform(1e5, 1e7, liq_bins.size),
        "collateral_usd": 1e4}) for v in VARIANTS])
    return {"raw.mark_price_klines": candles, "raw.klines": candles, "raw.agg_trades": trades,
            "raw.open_interest": oi, "model.position_distribution": dist, "model.liquidation_levels": levels}


def store_tables(path, tables: dict[str, pd.DataFrame], shuffle: int | None) -> duckdb.DuckDBPyConnection:
    """The tables stored in their order, or in a shuffled physical order; one thread, so scans follow it."""
    con = duckdb.connect(str(path), config={"threads": 1})
    for name, frame in tables.items():
        if shuffle is not None:
            frame = frame.sample(frac=1.0, random_state=shuffle).reset_index(drop=True)
        ensure_tables(con, name)
        con.register("_rows", frame)
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _rows")
        con.unregister("_rows")
    return con
