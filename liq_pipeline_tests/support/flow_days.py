"""Days of book-engine inputs with a random-walk mark, and the engine run on them, for tests of what is learned
across days (the survival clock): one 0.1 % grid, BTCUSDT's bracket table, two size buckets."""

import datetime as dt

import numpy as np

from liq_pipeline.config import FLOW
from liq_pipeline.model import flow as fl
from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.model.levels import SizeBuckets
from liq_pipeline.model.margin import table_for

GRID = PriceGrid("relative", 0.001)
TABLE = table_for("BTCUSDT", dt.date(2026, 1, 10)).table
DAY0_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
STEPS, STEP_MS = 96, 15 * 60_000


def wandering_days(n_days: int, seed: int = 5, price: float = 90_000.0, daily_vol: float = 0.02,
                   oi_usd: float = 10e6) -> list[fl.FlowInputs]:
    """Inputs of n_days: a random-walk mark in 15-minute steps (each step's range ± one step's sd), $1 M traded
    per step at the step's price, constant OI, no funding or crowding signal."""
    rng = np.random.default_rng(seed)
    path = price * np.exp(np.cumsum(rng.normal(0, daily_vol / np.sqrt(STEPS), n_days * STEPS)))
    nan = np.full(STEPS, np.nan)
    days = []
    for d in range(n_days):
        p = path[d * STEPS:(d + 1) * STEPS]
        swing = p * daily_vol / np.sqrt(STEPS)
        days.append(fl.FlowInputs(
            step_start_ms=DAY0_MS + d * 86_400_000 + np.arange(STEPS) * STEP_MS, step_ms=STEP_MS,
            mark_high=p + swing, mark_low=p - swing, oi_start_usd=np.full(STEPS, oi_usd), oi_end_usd=np.full(STEPS, oi_usd),
            entry_price=p, traded_usd=np.diag(np.full(STEPS, 1e6)), taker_buy_usd=np.full(STEPS, 5e5),
            taker_sell_usd=np.full(STEPS, 5e5), settle_ms=np.zeros(0, np.int64), settle_rate=np.zeros(0),
            funding_8h=nan, premium=nan, account_long_share=nan,
            sizes=SizeBuckets(np.array([5_000.0, 50_000.0]), np.array([0.5, 0.5]))))
    return days


def run(inputs: fl.FlowInputs, start: fl.Book | None = None, params=FLOW) -> fl.FlowDay:
    """One day of the engine from `start` (empty by default) with the prior mix of `params`."""
    return fl.run_day(start or fl.Book.empty(), inputs, GRID, TABLE, fl.SideMix.prior(params), params)
