"""The drawn price path (sim/price.py, before any liquidation impact) has the intraday structure of real BTCUSDT:
hourly returns neither continue nor revert (real development window: lag-1 autocorrelation +0.002, robust
standard error 0.042; docs/simulator.md), so hourly and daily returns give the same annualised vol."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from scipy.signal import lfilter

from liq_pipeline.sim import SimConfig
from liq_pipeline.sim.config import MINUTES_PER_DAY
from liq_pipeline.sim.market import SymbolSim

DAYS = 120


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> np.ndarray:
    """Hourly log returns of DAYS drawn days of BTCUSDT (the price stream alone: no book, no impact)."""
    return drawn_hourly_returns(tmp_path_factory.mktemp("price"))


def drawn_hourly_returns(out_dir, days: int = DAYS, seed: int = 11) -> np.ndarray:
    cfg = SimConfig(symbols=("BTCUSDT",), start=dt.date(2026, 1, 1), days=days, seed=seed, out_dir=out_dir,
                    positions_per_day=200, workers=1)
    sim = SymbolSim(cfg, "BTCUSDT")
    minute_ret = np.concatenate([sim._predraw_day()["cumret"][:, -1] for _ in range(days)])
    return minute_ret.reshape(days * MINUTES_PER_DAY // 60, 60).sum(axis=1)


def intraday_structure(ret: np.ndarray, lags: int = 24) -> tuple[np.ndarray, np.ndarray, float]:
    """Autocorrelation at lags 1..`lags`, its standard error if the returns are a martingale difference with
    their own volatility clustering (sqrt(Σ r_t² r_{t-k}²) / Σ r_t², the heteroskedasticity-robust one), and
    the variance ratio of daily to 24 × hourly returns (1 = neither momentum nor reversion inside a day)."""
    x = ret - ret.mean()
    v = float((x * x).sum())
    acf = np.array([(x[k:] * x[:-k]).sum() / v for k in range(1, lags + 1)])
    se = np.array([np.sqrt((x[k:] ** 2 * x[:-k] ** 2).sum()) / v for k in range(1, lags + 1)])
    daily = ret[: ret.size // 24 * 24].reshape(-1, 24).sum(axis=1)
    return acf, se, float(np.var(daily) / (24 * np.var(ret)))


def no_momentum_nor_reversion(ret: np.ndarray) -> bool:
    acf, se, ratio = intraday_structure(ret)
    # Lag 1 within 3 robust standard errors; the 24 lags together as a portmanteau (robust Q ~ chi2(24):
    # 51.2 is its 99.9 % quantile); the variance ratio within 0.5..2 (heavy tails make it scatter: 0.69-1.55 on
    # 120 drawn days of seeds 1-8; the old simulator's reverting noise gave 0.39-0.48).
    return bool(abs(acf[0]) < 3 * se[0] and np.sum((acf / se) ** 2) < 51.2 and 0.5 < ratio < 2.0)


def test_the_drawn_path_neither_continues_nor_reverts_hour_to_hour(drawn):
    acf, se, ratio = intraday_structure(drawn)
    assert no_momentum_nor_reversion(drawn), f"lag-1 {acf[0]:+.3f} (se {se[0]:.3f}), variance ratio {ratio:.2f}"


def test_the_check_fails_on_momentum_and_on_reverting_noise(drawn):
    # The same returns made to continue (AR(1) +0.2, what the demo's BTCUSDT read) or to revert (a price with
    # intraday noise that reverts, the old simulator's fault): both are caught.
    momentum = lfilter([1.0], [1.0, -0.2], drawn)
    noise = np.random.default_rng(0).normal(0.0, drawn.std(), drawn.size + 1)
    reverting = drawn + np.diff(noise)
    assert not no_momentum_nor_reversion(momentum)
    assert not no_momentum_nor_reversion(reverting)
