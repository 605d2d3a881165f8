"""`liq realism --episode`: a scenario against one real episode of the development window, its band from
whole episode days (the day-block bootstrap of sim/facts.py)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from liq_pipeline.sim import fact_series, facts
from liq_pipeline.sim.episodes import EPISODES

HOUR_MS = 3_600_000


def _market(days: int, seed: int, liq_scale: float = 1.0) -> facts.HourlyMarket:
    rng = np.random.default_rng(seed)
    n = days * 24
    ret = rng.normal(0.0, 0.005, n)
    close = 90_000 * np.exp(np.cumsum(ret))
    open_ = np.r_[90_000.0, close[:-1]]
    wick = np.abs(rng.normal(0.0, 0.005, n))
    high, low = np.maximum(open_, close) * (1 + wick), np.minimum(open_, close) * (1 - wick)
    return facts.HourlyMarket(
        hour_ms=np.arange(n, dtype=np.int64) * HOUR_MS, open=open_, high=high, low=low, close=close,
        quote_volume_usd=np.full(n, 1e8), oi_usd=np.full(n, 2.4e9),
        liq_long_usd=(high - low) / open_ * 1e8 * liq_scale, liq_short_usd=(high - low) / open_ * 5e7 * liq_scale,
        funding_ms=np.arange(days * 3, dtype=np.int64) * 8 * HOUR_MS,
        funding_rate_8h=np.linspace(-1e-4, 9e-5, days * 3))


def test_day_blocks_give_a_band_where_weeks_cannot():
    episode = _market(days=6, seed=1)  # no complete week
    with pytest.raises(ValueError, match="no complete week"):
        facts.compare(_market(days=5, seed=2), episode, resamples=40)
    rows = {r.name: r for r in facts.compare(_market(days=5, seed=2), episode, resamples=40, block_days=1)}
    assert rows["spearman_liq_range"].verdict == "PASS"
    tripled = {r.name: r for r in facts.compare(_market(days=5, seed=2, liq_scale=3.0), episode, resamples=40,
                                                block_days=1)}["liq_pct_oi_per_day"]
    assert tripled.simulated > tripled.band[1] and tripled.verdict == "FAIL"
    # Day blocks: every resampled hour comes from one of the episode's days, whole.
    rows_by_day = facts.fact_rows(episode, block_days=1)
    assert np.array_equal(np.bincount(rows_by_day.hour["block"]), np.full(6, 24))


def test_episodes_lie_inside_the_development_window_and_name_their_scenario():
    from liq_pipeline.apps.scorecard import real_data_dir
    from liq_pipeline.sim import SCENARIOS

    for e in EPISODES.values():
        assert e.scenario in SCENARIOS and e.days >= 7
    root = real_data_dir()
    if not (root / fact_series.REAL_LIQUIDATIONS_FILE).is_file():
        pytest.skip(f"the real development window is not at {root} (set LIQ_REAL_DATA_DIR)")
    cascade = EPISODES["cascade"]
    m = fact_series.load_real(root, first_day=cascade.first_day, last_day=cascade.last_day)
    assert m.days == cascade.days
    whole = fact_series.load_real(root)
    # The cascade episode liquidates more of the OI per day than the window as a whole.
    assert facts.liq_pct_of_oi_per_day(facts.fact_rows(m, 1)) > facts.liq_pct_of_oi_per_day(facts.fact_rows(whole))
    with pytest.raises(ValueError, match="not inside its window"):
        fact_series.load_real(root, first_day=dt.date(2024, 1, 1), last_day=dt.date(2024, 1, 7))


def test_realism_rejects_an_unknown_episode(capsys):
    from liq_pipeline.cli import main as cli

    assert cli.main(["realism", "--episode", "meltdown"]) == 2
    assert "invalid choice: 'meltdown'" in capsys.readouterr().err
