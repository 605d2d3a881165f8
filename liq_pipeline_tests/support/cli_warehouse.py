"""The hand-made warehouse the `liq` CLI tests read: two heatmap snapshots 15 minutes apart, the day's zones,
a flat mark and constant open interest on 2026-01-05."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.model import variants
from liq_pipeline.model.grid import grid_for
from liq_pipeline_tests.support.warehouse_rows import insert_candles, insert_frame, insert_oi

SYMBOL = "BTCUSDT"
DAY = dt.date(2026, 1, 5)
GRID = grid_for(SYMBOL)
VARIANT = variants.DEFAULT  # what `liq heatmap` / `liq zones` show without --variant


def heatmap_rows(snapshot: dt.datetime, scale: float) -> pd.DataFrame:
    prices = np.array([95_000.0, 97_000.0, 103_000.0, 104_500.0])
    bins = GRID.bin_id(prices)
    return pd.DataFrame({
        "symbol": SYMBOL, "day": DAY, "variant": VARIANT, "snapshot_time": snapshot,
        "side": ["long", "long", "short", "short"], "bin_id": bins, "price": GRID.mid(bins),
        "notional_usd": scale * np.array([5e6, 7e6, 3e6, 4e6])})


def write_cli_warehouse(tmp_path) -> str:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        t0 = dt.datetime(2026, 1, 5, 12, 0)
        insert_frame(con, "model.liquidation_heatmap", heatmap_rows(t0, 1.0))
        insert_frame(con, "model.liquidation_heatmap", heatmap_rows(t0 + dt.timedelta(minutes=15), 2.0))
        insert_frame(con, "model.liquidation_zones", pd.DataFrame({
            "symbol": SYMBOL, "day": DAY, "variant": VARIANT, "as_of": dt.datetime(2026, 1, 6),
            "side": ["long"] * 4 + ["short"] * 4, "zone_rank": [1, 2, 3, 4] * 2,
            "centroid_price": [97_000, 95_000, 93_000, 91_000, 103_000, 104_500, 106_000, 108_000.0],
            "price_low": [96_500, 94_800, 92_900, 90_000, 102_900, 104_000, 105_800, 107_500.0],
            "price_high": [97_400, 95_200, 93_100, 92_000, 103_100, 105_000, 106_200, 108_500.0],
            "notional_usd": [7e6, 5e6, 1e6, 5e5, 4e6, 3e6, 1e6, 5e5],
            "distance_pct": [-3.0, -5.0, -7.0, -9.0, 3.0, 4.5, 6.0, 8.0],
            "share_of_side": [0.5, 0.3, 0.1, 0.05, 0.45, 0.35, 0.1, 0.05]}))
        insert_candles(con, "raw.mark_price_klines", DAY, np.full(1440, 100_000.0))
        insert_oi(con, DAY, np.full(288, 1e9))
    return str(path)
