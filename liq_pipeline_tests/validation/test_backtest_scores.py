"""The backtest on plain frames (validation/backtest.py): bars cut from the finest candles, the three
trivial baselines, the map's partial Spearman given the move, top-K notional recall and the share of
realized notional the map missed entirely."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from liq_pipeline.validation import backtest as bt

T0 = dt.datetime(2026, 1, 5)


def _market(n_bars: int = 96, seed: int = 3, map_knows: bool = True):
    """Hourly candles around 100k; a map snapshot at each bar start with one long level below and one short
    level above the open. Realized liquidations: the map's levels that the bar's range reaches, plus noise
    proportional to the side excursion; `map_knows=False` puts the levels where nothing is realized."""
    rng = np.random.default_rng(seed)
    start = [T0 + dt.timedelta(hours=h) for h in range(n_bars)]
    o = 100_000 * np.exp(np.cumsum(rng.normal(0, 0.003, n_bars)))
    down, up = np.abs(rng.normal(0, 0.004, n_bars)), np.abs(rng.normal(0, 0.004, n_bars))
    lo, hi = o * (1 - down), o * (1 + up)
    candles = pd.DataFrame({"open_time": start, "open": o, "high": hi, "low": lo, "interval_minutes": 60})
    lvl_long, lvl_short = o * (1 - rng.uniform(0, 0.008, n_bars)), o * (1 + rng.uniform(0, 0.008, n_bars))
    size_long, size_short = rng.lognormal(13, 1, n_bars), rng.lognormal(13, 1, n_bars)
    heat = pd.DataFrame({"snapshot_time": np.repeat(start, 2), "side": ["long", "short"] * n_bars,
                         "price": np.ravel(np.column_stack([lvl_long, lvl_short])),
                         "notional_usd": np.ravel(np.column_stack([size_long, size_short]))})
    hit_long, hit_short = lvl_long >= lo, lvl_short <= hi
    if not map_knows:  # realized liquidations unrelated to the map's levels, driven by the excursion only
        hit_long, hit_short = np.zeros(n_bars, bool), np.zeros(n_bars, bool)
    realized = pd.DataFrame({"bar_start": start,
                             "real_long": hit_long * size_long + down * 1e7 * rng.uniform(0.5, 1.5, n_bars),
                             "real_short": hit_short * size_short + up * 1e7 * rng.uniform(0.5, 1.5, n_bars)})
    oi = pd.DataFrame({"time": [T0], "oi_usd": [5e9]})
    return heat, candles, realized, oi


def test_a_map_that_knows_the_levels_has_positive_partial_spearman():
    heat, candles, realized, oi = _market(map_knows=True)
    m, bars = bt.score_backtest(heat, candles, realized, open_interest=oi)
    assert m["status"] == "scored" and m["bars_scored"] == 96 and m["cells"] == 192
    assert m["partial_spearman"]["r"] > 0.3
    assert set(m["baselines"]) == {"leverage_only", "bar_range", "side_excursion"}
    assert m["strongest_baseline"] in m["baselines"]
    best = m["baselines"][m["strongest_baseline"]]["spearman"]["r"]
    assert m["lift_spearman"] == pytest.approx(m["spearman"]["r"] - best)
    assert 0 <= m["realized_share_where_map_zero"] <= 1
    assert len(m["daily"]) == 4 and m["baselines_oi_scaled"]
    assert bars["excursion_long"].iloc[0] == pytest.approx(
        (bars["open"].iloc[0] - bars["low"].iloc[0]) / bars["open"].iloc[0] * 5e9)
    assert "lift_precision" not in m


def test_a_map_that_restates_the_move_carries_nothing_beyond_it():
    heat, candles, realized, oi = _market(map_knows=False)
    m, _ = bt.score_backtest(heat, candles, realized, open_interest=oi)
    # realized notional is the side excursion times noise: the excursion baseline wins, the map adds nothing
    assert m["strongest_baseline"] == "side_excursion"
    assert m["baselines"]["side_excursion"]["spearman"]["r"] > 0.8
    assert abs(m["partial_spearman"]["r"]) < 0.2
    assert m["lift_spearman"] < 0


def test_realized_notional_where_the_map_predicted_nothing():
    heat, candles, realized, oi = _market()
    heat = heat[heat["side"] == "long"]  # no short levels at all: every realized short is missed
    m, bars = bt.score_backtest(heat, candles, realized, open_interest=oi)
    missed = bars["real_short"].sum() + bars.loc[bars["pred_long"] == 0, "real_long"].sum()
    assert m["realized_share_where_map_zero"] == pytest.approx(missed / (bars["real_long"].sum() + bars["real_short"].sum()))


def test_bars_shorter_than_the_finest_candle_are_an_error_naming_both():
    heat, candles, realized, _ = _market()
    with pytest.raises(bt.BacktestInputError, match=r"30-minute bars .* \(60-minute"):
        bt.score_backtest(heat, candles, realized, bar_minutes=30, candle_minutes=60)
    with pytest.raises(bt.BacktestInputError, match="90-minute bars"):
        bt.bar_frame(candles, 90, 60)


def test_bars_aggregate_finer_candles():
    candles = pd.DataFrame({"open_time": [T0 + dt.timedelta(minutes=15 * i) for i in range(8)],
                            "open": [1.0, 2, 3, 4, 5, 6, 7, 8], "high": [2.0, 9, 4, 5, 6, 7, 8, 9],
                            "low": [0.5, 1, 2, 3, 4, 5, 1, 7]})
    bars = bt.bar_frame(candles, 60, 15)
    assert bars["open"].tolist() == [1.0, 5.0] and bars["high"].tolist() == [9.0, 9.0]
    assert bars["low"].tolist() == [0.5, 1.0] and bars["candles"].tolist() == [4, 4]


def test_each_bar_uses_its_finest_series_mark_before_last():
    t = [T0 + dt.timedelta(minutes=15 * i) for i in range(4)] + [T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2)]
    candles = pd.DataFrame({"open_time": t + [T0 + dt.timedelta(hours=2)], "open": 100.0,
                            "high": [101, 102, 101, 101, 105, 107, 103.0], "low": 99.0,
                            "interval_minutes": [15, 15, 15, 15, 60, 60, 60],
                            "series": ["mark"] * 4 + ["mark", "last", "mark"]})
    # bar 00:00 from the 15-minute mark candles, 01:00 from the hourly mark candle, 02:00 mark before last
    bars = bt.bar_frame(candles, 60)
    assert bars["candle_minutes"].tolist() == [15, 60, 60] and bars["high"].tolist() == [102.0, 105.0, 103.0]
    assert bars["price_series"].tolist() == ["mark", "mark", "mark"]
    only_last = bt.bar_frame(candles[candles["series"] == "last"], 60)
    assert only_last["price_series"].tolist() == ["last"]
    with pytest.raises(bt.BacktestInputError, match=r"30-minute bars .*\(60-minute, from 2026-01-05 01:00"):
        bt.bar_frame(candles, 30)


def test_a_stale_snapshot_does_not_predict():
    heat, candles, realized, oi = _market(n_bars=48)
    heat = heat[heat["snapshot_time"] == T0]
    m, _ = bt.score_backtest(heat, candles, realized, open_interest=oi, max_snapshot_age=dt.timedelta(hours=12))
    assert m["bars_scored"] == 13 and m["bars_without_snapshot"] == 35
