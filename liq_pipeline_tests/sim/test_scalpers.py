"""Scalpers (small, short-lived, high-leverage isolated positions opened at the mark) and the price stream that
does not depend on the agents: the draws, the positions they open, and the hours their liquidations fill."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from liq_pipeline.sim import SimConfig, simulate
from liq_pipeline.sim.market import SymbolSim

START = dt.date(2026, 1, 5)


def cfg(tmp_path, **kw) -> SimConfig:
    base = dict(symbols=("BTCUSDT",), start=START, days=1, seed=3, out_dir=tmp_path, trades_per_day=4_000,
                positions_per_day=2_000, workers=1)
    return SimConfig(**{**base, **kw})


def test_the_price_path_does_not_depend_on_the_agents(tmp_path):
    # Two markets of one seed that differ only in their openers draw the same returns, volatility, regimes
    # and premium noise, day after day: a mechanism's effect is not mixed with a new random path.
    a = SymbolSim(cfg(tmp_path, scalpers_per_position=0.0), "BTCUSDT")
    b = SymbolSim(cfg(tmp_path, scalpers_per_position=1.0, positions_per_day=500), "BTCUSDT")
    for _ in range(2):
        da, db = a._predraw_day(), b._predraw_day()
        for key in ("cumret", "sig", "regime", "premium_ar", "premium_z"):
            np.testing.assert_array_equal(da[key], db[key])
        assert da["o_notional"].size != db["o_notional"].size


def test_scalper_draws_follow_their_parameters(tmp_path):
    c = cfg(tmp_path, scalpers_per_position=1.0)
    pre = SymbolSim(c, "BTCUSDT")._predraw_day()
    scalp = pre["o_scalp"]
    assert scalp.mean() == pytest.approx(0.5, abs=0.03)  # one scalper per other opener
    assert set(np.unique(pre["o_lev"][scalp])) <= set(c.scalper_leverages)
    size = pre["o_notional"][scalp]
    assert size.min() >= c.scalper_size_min_usd and size.max() <= c.scalper_size_max_usd
    # Pareto(alpha 2) from the minimum: median = min * 2^(1/alpha).
    assert np.median(size) == pytest.approx(c.scalper_size_min_usd * 2 ** (1 / c.scalper_size_tail_alpha), rel=0.1)
    hold_min = (pre["o_hold_ms"][scalp] - 60_000) / 60_000
    assert np.median(hold_min) == pytest.approx(c.scalper_median_hold_minutes, rel=0.1)
    assert not SymbolSim(cfg(tmp_path, scalpers_per_position=0.0), "BTCUSDT")._predraw_day()["o_scalp"].any()


def _positions(out) -> pd.DataFrame:
    p = pd.read_parquet(out / "truth" / "positions" / "BTCUSDT.parquet")
    p["hold_min"] = (p["close_time"] - p["open_time"]).dt.total_seconds() / 60
    p["notional"] = p["quantity"] * p["entry_price"]
    return p


def test_scalpers_open_small_isolated_high_leverage_positions_that_end_within_hours(tmp_path):
    out_with, out_without = tmp_path / "with", tmp_path / "without"
    simulate(cfg(out_with, scalpers_per_position=1.0))
    simulate(cfg(out_without, scalpers_per_position=0.0))
    w, wo = _positions(out_with), _positions(out_without)
    # About twice the openers; the extra ones at 75x and more, isolated, small, and mostly gone within hours.
    assert 1.6 < len(w) / len(wo) < 2.4
    hot = w[(w["leverage"] >= 75) & (w["margin_mode"] == "isolated")]
    hot_without = wo[(wo["leverage"] >= 75) & (wo["margin_mode"] == "isolated")]
    assert len(hot) - len(hot_without) > 0.7 * (len(w) - len(wo))
    assert hot["notional"].median() < 1_000
    assert hot["hold_min"].median() < 120
    # Scalpers never trade cross: the cross positions are as many as without them.
    assert (w["margin_mode"] == "cross").sum() == pytest.approx((wo["margin_mode"] == "cross").sum(), rel=0.15)


@pytest.mark.slow  # simulates two 3-day markets
def test_scalpers_put_liquidations_into_more_hours(tmp_path):
    # The mechanism the calm market's Spearman(liquidations, range) needed (docs/simulator.md): without
    # scalpers many hours have no liquidation at all; with them more hours do, on the same price draws.
    share = {}
    for ratio in (0.0, 0.4):
        out = tmp_path / f"s{ratio}"
        simulate(cfg(out, days=3, scalpers_per_position=ratio))
        liq = pd.read_parquet(out / "truth" / "liquidations" / "BTCUSDT.parquet")
        hours = liq["liq_time"].dt.floor("h")
        share[ratio] = hours[hours.dt.date > START].nunique() / 48  # days 2 and 3 (the book fills on day 1)
    assert share[0.4] > share[0.0] + 0.1, share


def test_invalid_scalper_parameters_fail_with_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="scalper_leverage_weights"):
        cfg(tmp_path, scalper_leverage_weights=(0.5, 0.5, 0.5, 0.5)).validate()
    with pytest.raises(ValueError, match="scalpers_per_position"):
        cfg(tmp_path, scalpers_per_position=-1.0).validate()
    with pytest.raises(ValueError, match="scalper_size"):
        cfg(tmp_path, scalper_size_min_usd=60_000.0).validate()
    with pytest.raises(ValueError, match="scalper_median_hold_minutes"):
        cfg(tmp_path, scalper_median_hold_minutes=0.0).validate()


def test_a_busy_day_keeps_its_noise_volume(tmp_path):
    # The day's own flow exceeds trades_per_day: the noise round trips stay (as many trades as the flow)
    # and keep noise_volume_share of the notional.
    summary = simulate(cfg(tmp_path, trades_per_day=100, positions_per_day=500, scalpers_per_position=0.0))
    vol = summary.symbols["BTCUSDT"].volume_usd
    assert vol["noise"] / sum(vol.values()) == pytest.approx(SimConfig().noise_volume_share, abs=0.02)
