"""Model v3 changes of the book engine (model/flow.py): each leverage bucket drawn as an interval of
leverages, and the cells opened in a step facing only the extreme the step reached after they opened."""

import dataclasses
import datetime as dt

import numpy as np
import pytest

from liq_pipeline.config import FLOW
from liq_pipeline.model import flow as fl
from liq_pipeline.model import variants
from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.model.levels import SizeBuckets
from liq_pipeline.model.margin import table_for

GRID = PriceGrid("relative", 0.001)
TABLE = table_for("BTCUSDT", dt.date(2026, 1, 10)).table
DAY0_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
STEP_MS = 15 * 60_000


def inputs(T=4, price=90_000.0, high=None, low=None, close=None, oi=10e6):
    return fl.FlowInputs(
        step_start_ms=DAY0_MS + np.arange(T) * STEP_MS, step_ms=STEP_MS,
        mark_high=np.full(T, price) if high is None else np.asarray(high, float),
        mark_low=np.full(T, price) if low is None else np.asarray(low, float),
        oi_start_usd=np.full(T, oi), oi_end_usd=np.full(T, oi), entry_price=np.array([price]),
        traded_usd=np.full((T, 1), 1e6), taker_buy_usd=np.full(T, 5e5), taker_sell_usd=np.full(T, 5e5),
        settle_ms=np.zeros(0, np.int64), settle_rate=np.zeros(0), funding_8h=np.full(T, np.nan),
        premium=np.full(T, np.nan), account_long_share=np.full(T, np.nan),
        sizes=SizeBuckets(np.array([5_000.0]), np.array([1.0])),
        mark_close=None if close is None else np.asarray(close, float))


# ---------------------------------------------------------------------------------------------- buckets
def test_bucket_points_span_the_geometric_midpoints_between_buckets():
    pts = fl.bucket_points((2.0, 5.0, 10.0, 125.0), 3)
    assert pts.shape == (4, 3)
    assert np.all(np.diff(pts.ravel()) > 0)  # strictly increasing: the buckets' intervals do not overlap
    # The 5x bucket's points lie between sqrt(2*5) and sqrt(5*10), log-centred on thirds of that interval.
    lo, hi = np.log(np.sqrt(10.0)), np.log(np.sqrt(50.0))
    assert np.log(pts[1]) == pytest.approx(lo + (hi - lo) * (np.arange(3) + 0.5) / 3)
    assert pts[-1].max() < 125.0  # never above the highest bucket (the bracket maximum)
    assert pts[0].min() == pytest.approx(2.0 ** 2 / np.sqrt(10.0) * (np.sqrt(10.0) / (2.0 ** 2 / np.sqrt(10.0))) ** (1 / 6))
    assert np.array_equal(fl.bucket_points((2.0, 5.0), 1), np.array([[2.0], [5.0]]))
    with pytest.raises(ValueError, match="points per bucket must be >= 1"):
        fl.bucket_points((2.0, 5.0), 0)
    with pytest.raises(ValueError, match="strictly increasing"):
        fl.bucket_points((5.0, 2.0), 2)


def test_a_bucket_opens_at_several_leverages_with_its_weight_shared_and_learned_per_bucket():
    params = dataclasses.replace(FLOW, leverages=(10.0, 50.0), prior_weights=(0.5, 0.5), leverage_points=4)
    mix = fl.SideMix.prior(params)
    day = fl.run_day(fl.Book.empty(), inputs(T=1), GRID, TABLE, mix, params)
    b = day.end_book
    assert set(b.lev_bucket) == {0, 1}
    for k in (0, 1):
        m = b.lev_bucket == k
        assert np.unique(b.leverage[m & (b.side > 0)]).size == 4  # four leverages per bucket and side
        assert np.allclose(b.weight[m], 0.5)  # each cell carries its bucket's weight (the fit's unit)
    # The four points share the bucket's notional equally; the buckets split the opens by the mix.
    longs = b.notional_usd[b.side > 0]
    assert np.allclose(longs, longs[0])
    # Distinct leverages give distinct liquidation prices: no comb of one price per bucket.
    assert np.unique(np.round(b.lp_open[b.side > 0], 2)).size == 8


def test_seed_rules_keep_the_seed_leverage_values_alone():
    p = fl.params_for(variants.get(variants.SEED[0]))
    assert p.leverage_points == 1
    assert fl.params_for(variants.get(variants.DEFAULT)).leverage_points == FLOW.leverage_points


# ---------------------------------------------------------------------------------------------- extremes
def test_extreme_order_from_the_candle_direction():
    close = np.array([100.0, 101.0, 99.0, 99.0, np.nan, 98.0])
    low, high = close - 2.0, close + 2.0
    new_low, new_high = fl.extreme_order(low, high, close)
    # step 0: direction unknown; 1: up (low first: new cells face the close instead); 2: down (high first);
    # 3: flat; 4: no close; 5: after a missing close, unknown.
    assert np.array_equal(new_low, np.where([False, True, False, False, False, False], close, low), equal_nan=True)
    assert np.array_equal(new_high, np.where([False, False, True, False, False, False], close, high), equal_nan=True)
    lo, hi = fl.extreme_order(low, high, None)
    assert np.array_equal(lo, low, equal_nan=True) and np.array_equal(hi, high, equal_nan=True)
    with pytest.raises(ValueError, match="mark_close has shape"):
        fl.extreme_order(low, high, np.zeros(2))


def _fresh_longs_left(close):
    """A step that dips 3 % and ends 1 % up (or down): 50x longs opened in it at 90,000 have LP ≈ 88,560."""
    params = dataclasses.replace(FLOW, leverages=(50.0,), prior_weights=(1.0,), leverage_points=1,
                                 survival_candidates=())
    inp = inputs(T=2, high=[90_000.0, 91_000.0], low=[90_000.0, 87_300.0], close=close)
    day = fl.run_day(fl.Book.empty(), inp, GRID, TABLE, fl.SideMix.prior(params), params)
    b = day.end_book
    # Every long still in the book with LP above the dip was opened in step 1 (step 0's were consumed).
    return b.notional_usd[(b.side > 0) & (b.liq_price() >= 87_300.0)].sum(), day


def test_new_longs_are_not_consumed_by_a_low_made_before_they_opened():
    up_left, up = _fresh_longs_left(close=[90_000.0, 90_900.0])  # closed up: the low came first
    down_left, down = _fresh_longs_left(close=[90_000.0, 89_100.0])  # closed down: the low came last
    assert up_left > 0
    assert down_left == 0.0

    assert down.consumed_usd[1, 0] > up.consumed_usd[1, 0]
    # Older longs (opened in step 0) face the low either way.
    assert up.consumed_usd[1, 0] > 0


def test_new_longs_still_face_the_close_of_a_step_that_made_its_low_first():
    """Longs opened at 93,000 at 125x (LP ≈ 92,630) in a step that dipped first and closed up at 92,600: the
    price ended below their liquidation price after they opened, so they are liquidated in the step."""
    params = dataclasses.replace(FLOW, leverages=(125.0,), prior_weights=(1.0,), leverage_points=1,
                                 survival_candidates=())
    inp = dataclasses.replace(inputs(T=2, high=[93_000.0, 93_000.0], low=[92_500.0, 87_300.0],
                                     close=[92_500.0, 92_600.0]), entry_price=np.array([93_000.0]))
    day = fl.run_day(fl.Book.empty(), inp, GRID, TABLE, fl.SideMix.prior(params), params)
    b = day.end_book
    longs = (b.side > 0) & (b.notional_usd > 0)
    assert not np.any(longs & (b.liq_price() >= 92_600.0))
    assert day.consumed_usd[1, 0] > 0
