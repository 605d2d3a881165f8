"""The stylized facts behind `liq realism` (sim/facts.py) on markets whose answer is known, and the command
on a short simulated calm window against the real development window."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from liq_pipeline.sim import fact_series, facts

HOUR_MS = 3_600_000


def market(days: int = 28, seed: int = 0, hourly_sd: float = 0.005, **over) -> facts.HourlyMarket:
    """A random walk with iid hourly returns, flat OI and funding at a known mix of values."""
    rng = np.random.default_rng(seed)
    n = days * 24
    ret = rng.normal(0.0, hourly_sd, n)
    close = 90_000 * np.exp(np.cumsum(ret))
    open_ = np.r_[90_000.0, close[:-1]]
    wick = np.abs(rng.normal(0.0, hourly_sd, n))
    high, low = np.maximum(open_, close) * (1 + wick), np.minimum(open_, close) * (1 - wick)
    rate = np.where(np.arange(days * 3) % 4 == 0, 1e-4, np.linspace(-1e-4, 9e-5, days * 3))
    cols = dict(hour_ms=np.arange(n, dtype=np.int64) * HOUR_MS, open=open_, high=high, low=low, close=close,
                quote_volume_usd=np.full(n, 1e8), oi_usd=np.full(n, 2.4e9),
                liq_long_usd=(high - low) / open_ * 1e8, liq_short_usd=(high - low) / open_ * 5e7,
                funding_ms=np.arange(days * 3, dtype=np.int64) * 8 * HOUR_MS, funding_rate_8h=rate)
    cols.update(over)
    return facts.HourlyMarket(**cols)


def test_statistics_of_a_random_walk_with_known_answers():
    m = market()
    s = facts.statistics(facts.fact_rows(m))
    # Liquidations = 1.5e8 × range per hour on 2.4e9 OI.
    rng = (m.high - m.low) / m.open
    assert s["liq_pct_oi_per_day"] == pytest.approx(np.mean(rng) * 1.5e8 / 2.4e9 * 24 * 100)
    assert s["funding_at_interest_share"] == pytest.approx(np.mean(np.isclose(m.funding_rate_8h, 1e-4)))
    assert s["funding_q50"] == pytest.approx(np.median(m.funding_rate_8h))
    assert s["vol_ratio"] == pytest.approx(1.0, abs=0.3)  # iid returns: no intraday structure
    assert abs(s["ret_autocorr_1h"]) < 0.1
    assert s["oi_churn_per_day"] == 0 and s["daily_abs_doi_pct"] == 0
    assert s["spearman_liq_range"] == pytest.approx(1.0)  # liquidations are a monotone function of range
    assert s["volume_over_oi"] == pytest.approx(24 * 1e8 / 2.4e9)
    assert s["liq_long_share"] == pytest.approx(2 / 3)
    liq = np.sort(rng)[::-1]
    assert s["top5pct_hours_share"] == pytest.approx(liq[: round(0.05 * liq.size)].sum() / liq.sum())


def test_reverting_intraday_noise_shows_in_the_vol_ratio_and_autocorrelation():
    rng = np.random.default_rng(3)
    n = 28 * 24
    noise = rng.normal(0, 0.006, n + 1)  # a price that reverts: hourly returns are differences of noise
    close = 90_000 * np.exp(np.cumsum(rng.normal(0, 0.001, n)) + noise[1:])
    m = market(open=np.r_[90_000 * np.exp(noise[0]), close[:-1]], close=close,
               high=np.maximum(np.r_[90_000.0, close[:-1]], close) * 1.001,
               low=np.minimum(np.r_[90_000.0, close[:-1]], close) * 0.999)
    s = facts.statistics(facts.fact_rows(m))
    assert s["vol_ratio"] > 1.8
    assert s["ret_autocorr_1h"] < -0.3


def test_oi_churn_counts_hourly_changes_and_daily_change_compares_day_starts():
    oi = np.full(28 * 24, 1e9)
    oi[1::2] = 1.01e9  # +1 % then −1 % every hour: 24 changes of ~1 % a day, no change day to day
    s = facts.statistics(facts.fact_rows(market(oi_usd=oi)))
    assert s["oi_churn_per_day"] == pytest.approx(24 * 0.01, rel=0.01)
    assert s["daily_abs_doi_pct"] == pytest.approx(0.0)


def test_missing_oi_samples_are_left_out_not_zero():
    oi = np.full(28 * 24, 2.4e9)
    oi[5] = np.nan
    s = facts.statistics(facts.fact_rows(market(oi_usd=oi)))
    assert np.isfinite(s["liq_pct_oi_per_day"]) and np.isfinite(s["oi_churn_per_day"])


def test_a_market_needs_whole_days_and_aligned_columns():
    with pytest.raises(ValueError, match="whole days"):
        market(days=1, hour_ms=np.arange(23, dtype=np.int64))
    with pytest.raises(ValueError, match="close has shape"):
        market(close=np.ones(5))


def test_bands_cover_the_real_statistic_and_a_market_outside_fails():
    real = market(days=77, seed=1)
    inside = facts.compare(market(days=35, seed=2), real, resamples=60)
    by_name = {r.name: r for r in inside}
    assert by_name["spearman_liq_range"].verdict == "PASS"
    doubled = market(days=35, seed=2, oi_usd=np.full(35 * 24, 1.2e9))  # half the OI: twice the liquidation share
    row = {r.name: r for r in facts.compare(doubled, real, resamples=60)}["liq_pct_oi_per_day"]
    assert row.simulated > row.band[1] and row.verdict == "FAIL"


def test_a_statistic_that_cannot_be_computed_is_inconclusive_not_passed():
    row = facts.FactRow("x", "x", float("nan"), 1.0, (0.5, 1.5))
    assert row.verdict == "INCONCLUSIVE"


def test_bands_need_a_complete_real_week():
    with pytest.raises(ValueError, match="no complete week"):
        facts.bands(facts.fact_rows(market(days=6), 1), 7)


@pytest.fixture(scope="module")
def short_calm(tmp_path_factory):
    from liq_pipeline.sim import SimConfig, simulate

    out = tmp_path_factory.mktemp("realism")
    simulate(SimConfig.for_scenario("calm", symbols=("BTCUSDT",), start=dt.date(2026, 1, 1), days=10, seed=7,
                                    out_dir=out, workers=1))
    return out


@pytest.mark.slow  # simulates ten calm days
def test_realism_on_a_short_calm_window(short_calm, capsys):
    """`liq realism` on 7 simulated calm days after a 3-day warm-up, against the real development window:
    every statistic must pass (none is listed as not yet reproduced)."""
    from liq_pipeline.apps.scorecard import real_data_dir
    from liq_pipeline.cli import main as cli

    if not (real_data_dir() / fact_series.REAL_LIQUIDATIONS_FILE).is_file():
        pytest.skip(f"the real development window is not at {real_data_dir()} (set LIQ_REAL_DATA_DIR)")
    code = cli.main(["realism", str(short_calm), "--skip-days", "3", "--resamples", "100", "--json"])
    import json

    out = json.loads(capsys.readouterr().out)
    verdicts = {s["name"]: s["verdict"] for s in out["statistics"]}
    assert set(verdicts) == {s.name for s in facts.STATISTICS}
    held = out["real_held_out"]  # the real market's own weeks on the same test, beside the verdicts
    assert held["windows"] == len(held["failed_counts"]) >= 2 and set(held["failures"]) == set(verdicts)
    failing = {k for k, v in verdicts.items() if v != "PASS"}
    assert failing <= KNOWN_MISSES, f"statistics that fail: {sorted(failing)}"
    assert code == (1 if failing else 0)


#: Statistics this window may fail (docs/simulator.md, "What does not match yet"): none. Spearman(liquidations,
#: range), the one listed until the bands became simultaneous prediction bands for a window of the simulated
#: length, reads 0.916 on this week inside its band [0.557, 0.953]. Any statistic failing fails the suite.
KNOWN_MISSES: set[str] = set()


def test_realism_names_a_folder_that_is_not_a_simulation(tmp_path, capsys):
    from liq_pipeline.cli import main as cli

    assert cli.main(["realism", str(tmp_path)]) == 2
    assert "no simulation.json" in capsys.readouterr().err
