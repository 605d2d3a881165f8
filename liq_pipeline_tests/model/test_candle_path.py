"""Entry prices of a candle when only the candle is known: equal-volume prices along its OHLC path
(model/candle_path.py), and the kline reader that places a step's opens there instead of at one price."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from liq_pipeline.config import MODEL
from liq_pipeline.model.candle_path import PATH_POINTS, path_points
from liq_pipeline.model.grid import grid_for
from liq_pipeline.warehouse.readers.raw_day import load_day_inputs
from liq_pipeline.warehouse.schema import ensure_tables

E = np.exp


def _one(o, h, lo, c, points=3):
    return path_points(np.array([o]), np.array([h]), np.array([lo]), np.array([c]), points)[0]


def test_a_candle_that_closes_where_it_opened_trades_evenly_over_its_range():
    # Log prices: low 0, open = close 1, high 2. Path 1 -> 0 -> 2 -> 1 crosses every price twice: uniform.
    assert np.allclose(np.log(_one(E(1), E(2), E(0), E(1))), [1 / 3, 1, 5 / 3])


def test_the_prices_between_open_and_close_weigh_more_than_the_tails():
    # Open 1, low 0, high = close 2: legs 1 -> 0 and 0 -> 2 cross [0, 1] twice, (1, 2] once (volume 2 : 1).
    assert np.allclose(np.log(_one(E(1), E(2), E(0), E(2))), [0.25, 0.75, 1.5])


def test_a_falling_candle_makes_its_high_first_the_mirror_image():
    up = np.log(_one(E(1), E(2), E(0), E(2)))
    down = np.log(_one(E(1), E(2), E(0), E(0)))
    assert np.allclose(down, 2 - up[::-1])


def test_points_stay_in_the_range_sorted_and_a_flat_candle_gives_its_price():
    rng = np.random.default_rng(3)
    o = 100 * E(rng.normal(0, 0.01, 500))
    c = o * E(rng.normal(0, 0.01, 500))
    h = np.maximum(o, c) * E(np.abs(rng.normal(0, 0.005, 500)))
    lo = np.minimum(o, c) * E(-np.abs(rng.normal(0, 0.005, 500)))
    p = path_points(o, h, lo, c, 5)
    assert p.shape == (500, 5)
    assert np.all(p >= lo[:, None] * (1 - 1e-12)) and np.all(p <= h[:, None] * (1 + 1e-12))
    assert np.all(np.diff(p, axis=1) >= 0)
    assert np.allclose(_one(100.0, 100.0, 100.0, 100.0), 100.0)
    assert np.allclose(_one(100.0, 103.0, 99.0, 102.0, points=1), _one(100.0, 103.0, 99.0, 102.0, 101)[50])


@pytest.mark.parametrize(("args", "match"), [
    ((100.0, 99.0, 101.0, 100.0, 3), "high is below its low"),
    ((100.0, 101.0, 0.0, 100.0, 3), "positive and finite"),
    ((100.0, 101.0, np.nan, 100.0, 3), "positive and finite"),
    ((100.0, 101.0, 99.0, 100.0, 0), "points per candle"),
])
def test_bad_candles_are_refused_with_the_cause(args, match):
    with pytest.raises(ValueError, match=match):
        _one(*args)


SYMBOL, DAY = "BTCUSDT", dt.date(2026, 1, 10)


def _klines(con, o, h, lo, c, volume):
    t = pd.date_range(dt.datetime.combine(DAY, dt.time()), periods=len(o), freq="15min")
    ensure_tables(con, "raw.klines")
    con.register("_rows", pd.DataFrame({
        "symbol": SYMBOL, "day": DAY, "interval": "15m", "open_time": t, "open": o, "high": h, "low": lo,
        "close": c, "volume": 1.0, "close_time": t + pd.Timedelta(minutes=15) - pd.Timedelta(1, "ms"),
        "quote_volume": volume, "trade_count": 0, "taker_buy_volume": 0.5, "taker_buy_quote_volume": 0.5,
        "source": "test"}))
    con.execute("INSERT INTO raw.klines BY NAME SELECT * FROM _rows")
    con.unregister("_rows")


def test_kline_reader_spreads_each_candles_volume_along_its_path_and_flags_broken_candles(tmp_path):
    grid = grid_for(SYMBOL, MODEL)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        # Step 0: a 2 % candle; step 1: a broken one (high below low); step 2: a flat one.
        _klines(con, [100_000.0, 100_000.0, 100_000.0], [102_000.0, 99_000.0, 100_000.0],
                [100_000.0, 101_000.0, 100_000.0], [102_000.0, 100_000.0, 100_000.0], [3e6, 5e6, 7e6])
        d = load_day_inputs(con, SYMBOL, DAY, grid, 15)
    want = grid.bin_id(path_points(np.array([100_000.0]), np.array([102_000.0]), np.array([100_000.0]),
                                   np.array([102_000.0]), PATH_POINTS)[0])
    assert PATH_POINTS == 3
    assert set(d.entry_bins[d.traded_usd[0] > 0]) == set(want) and len(set(want)) == 3
    assert np.allclose(d.traded_usd[0][d.traded_usd[0] > 0], 1e6)
    assert d.traded_usd[1].sum() == 0.0  # the broken candle is left out, and said so
    assert any("1 klines left out of the entry prices" in f for f in d.flags)
    assert d.traded_usd[2].sum() == pytest.approx(7e6)
    assert d.entry_source == "klines"
