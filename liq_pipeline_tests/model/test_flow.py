"""The `flow` engine (model/flow.py): conservation, consumption direction, funding creep, survival by
leverage, crowding signals and the calibration of the leverage mix from liquidations."""

import dataclasses

import numpy as np
import pytest

from liq_pipeline.config import FLOW, MODEL
from liq_pipeline.model import flow as fl
from liq_pipeline.model import variants
from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.model.levels import SizeBuckets
from liq_pipeline.model.margin import table_for

GRID = PriceGrid("relative", 0.001)
TABLE = table_for("BTCUSDT", __import__("datetime").date(2026, 1, 10)).table
DAY0_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
STEP_MS = 15 * 60_000


def make_inputs(T=96, day=0, price=90_000.0, oi=10e6, oi_path=None, high=None, low=None, funding=None, **over):
    start = DAY0_MS + day * 86_400_000 + np.arange(T) * STEP_MS
    oi_path = np.full(T + 1, oi) if oi_path is None else np.asarray(oi_path, dtype=float)
    traded = np.full((T, 1), 1e6)
    settle_ms, settle_rate = (np.zeros(0, np.int64), np.zeros(0)) if funding is None else funding
    base = dict(
        step_start_ms=start, step_ms=STEP_MS,
        mark_high=np.full(T, price * 1.001) if high is None else np.asarray(high, float),
        mark_low=np.full(T, price * 0.999) if low is None else np.asarray(low, float),
        oi_start_usd=oi_path[:-1], oi_end_usd=oi_path[1:], entry_price=np.array([price]), traded_usd=traded,
        taker_buy_usd=np.full(T, 5e5), taker_sell_usd=np.full(T, 5e5), settle_ms=settle_ms, settle_rate=settle_rate,
        funding_8h=np.full(T, np.nan), premium=np.full(T, np.nan), account_long_share=np.full(T, np.nan),
        sizes=SizeBuckets(np.array([5_000.0, 50_000.0]), np.array([0.5, 0.5])))
    base.update(over)
    return fl.FlowInputs(**base)


def run(inputs, start=None, mix=None, params=FLOW):
    return fl.run_day(start or fl.Book.empty(), inputs, GRID, TABLE, mix or fl.SideMix.prior(params), params)


def test_book_follows_open_interest_once_full():
    day1 = run(make_inputs())
    # Cold start: the book fills from the turnover opens and is then held at OI by the closes.
    assert day1.end_book.total_usd == pytest.approx(10e6, rel=1e-6)
    path = np.linspace(10e6, 12e6, 97)
    day2 = run(make_inputs(day=1, oi_path=path), start=day1.end_book)
    assert day2.end_book.total_usd == pytest.approx(12e6, rel=1e-6)
    # Every dollar is accounted for: start + opened = end + closed + consumed + expired.
    lhs = day1.end_book.total_usd + day2.opened_usd.sum()
    rhs = day2.end_book.total_usd + day2.closed_usd.sum() + day2.consumed_usd.sum() + day2.expired_usd
    assert lhs == pytest.approx(rhs, rel=1e-9)


def test_opens_are_gross_not_net():
    flat = run(make_inputs())
    # OI does not move, yet positions open (turnover) and close all day.
    assert flat.opened_usd.sum() > 0.5 * 10e6 and flat.closed_usd[48:].sum() > 0


def test_longs_are_consumed_when_the_mark_falls_through_them_and_shorts_when_it_rises():
    day1 = run(make_inputs())
    T = 96
    low = np.full(T, 89_910.0)
    low[50] = 90_000 * 0.90  # a 10 % wick down in one step
    day2 = run(make_inputs(day=1, low=low), start=day1.end_book)
    assert day2.consumed_usd[50, 0] > 0 and day2.consumed_usd[50, 1] == 0
    lp = day2.end_book.liq_price()
    # What is left of the longs opened before the wick sits below it; no short was touched.
    before = (day2.end_book.side > 0) & (day2.end_book.open_ms < DAY0_MS + 86_400_000 + 48 * STEP_MS)  # hours before the wick
    assert np.all(lp[before & (day2.end_book.notional_usd > 0)] < 90_000 * 0.90)
    high = np.full(T, 90_090.0)
    high[10] = 90_000 * 1.10
    day3 = run(make_inputs(day=1, high=high), start=day1.end_book)
    assert day3.consumed_usd[10, 1] > 0 and day3.consumed_usd[10, 0] == 0


def test_funding_moves_liquidation_prices_towards_the_mark_of_the_payer():
    day1 = run(make_inputs())
    settle = (np.array([DAY0_MS + 32 * 3_600_000]), np.array([0.001]))  # longs pay 0.1 % at 08:00 on day 2
    day2 = run(make_inputs(day=1, funding=settle), start=day1.end_book)
    before = day1.end_book
    after = fl.Book.from_columns({**before.columns(), "funding_paid": before.funding_paid + 0.001})
    moved = after.liq_price() - before.liq_price()
    # Long and short LPs both rise by about EP × 0.1 %: longs towards the mark, shorts away from it.
    assert np.allclose(moved, before.entry_price * 0.001, rtol=0.06)
    assert day2.funding_settled.sum() == pytest.approx(0.001)
    old = day2.end_book.open_ms < DAY0_MS + 86_400_000
    assert np.allclose(day2.end_book.funding_paid[old], before.funding_paid.max() + 0.001)


def test_a_leverage_dependent_hazard_closes_high_leverage_first():
    params = dataclasses.replace(FLOW, leverage_hazard_exponent=0.5)
    prior = fl.SideMix.prior(params)
    book = run(make_inputs(), params=params).end_book
    for d in (1, 2):
        book = run(make_inputs(day=d), start=book, params=params).end_book
    share_at_open = prior.long
    held = np.bincount(book.lev_bucket, weights=book.notional_usd, minlength=share_at_open.size)
    held = held / held.sum()
    # The surviving book holds less of the high-leverage buckets than they were opened with.
    assert held[-1] < share_at_open[-1] and held[0] > share_at_open[0]


def test_crowding_follows_funding_and_flags_missing_signals():
    T = 96
    p, signals, flags = fl.crowding(make_inputs())
    assert np.allclose(p, 0.5) and fl.FLAG_NO_FUNDING in flags and fl.FLAG_NO_PREMIUM in flags
    assert fl.FLAG_NO_TAKER in flags  # OI flat: no step with rising OI
    hot = make_inputs(funding_8h=np.full(T, 0.0006), account_long_share=np.full(T, 0.6))
    p, _, flags = fl.crowding(hot)
    assert np.all(p > 0.55) and fl.FLAG_NO_FUNDING not in flags and fl.FLAG_NO_ACCOUNTS not in flags
    cold = make_inputs(funding_8h=np.full(T, -0.0004))
    assert np.all(fl.crowding(cold)[0] < 0.5)


def test_the_premium_is_read_as_the_funding_rate_it_settles():
    """F = P + clamp(I − P, ±0.05 %): a premium inside [−0.04 %, +0.06 %] settles at the interest rate, neutral;
    outside the band it moves the long share the way funding does (reference/binance-data.md)."""
    P = np.array([-0.00045, -0.0004, 0.0, 0.0006, -0.0008, 0.001])
    np.testing.assert_allclose(fl.premium_as_funding(P), [0.00005, 0.0001, 0.0001, 0.0001, -0.0003, 0.0005])
    T = 96
    p, signals, _ = fl.crowding(make_inputs(premium=np.full(T, -0.00045)))
    assert np.allclose(signals["premium"], 0.5 + 0.3 * np.tanh(-0.05)) and np.all(np.abs(p - 0.5) < 0.02)
    assert np.all(fl.crowding(make_inputs(premium=np.full(T, 0.001)))[0] > 0.6)
    assert np.all(fl.crowding(make_inputs(premium=np.full(T, -0.001)))[0] < 0.4)


#: A seven-bucket retail prior (fit_side is the same for any grid; the configured one puts 99 % in 1.5x / 3x).
PRIOR7 = np.array([0.08, 0.17, 0.27, 0.24, 0.14, 0.06, 0.04])


def test_calibration_recovers_the_mix_that_generated_the_liquidations():
    rng = np.random.default_rng(3)
    L = PRIOR7.size
    U = rng.gamma(0.3, 1e5, size=(24 * 7, L)) * (rng.random((24 * 7, L)) < 0.3)
    true_w = np.array([0.02, 0.05, 0.1, 0.23, 0.3, 0.15, 0.15])
    R = U @ (0.4 * true_w)
    fit = fl.fit_side(U, R, PRIOR7, 1.0, ridge=1e-4)
    assert fit.source == "learned"
    assert fit.leveraged_share == pytest.approx(0.4, rel=0.05)
    assert np.abs(fit.weights - true_w).max() < 0.03


def test_leveraged_share_never_exceeds_the_whole_book():
    """Public liquidations 3× what the book consumed (a book still filling) fit Σβ ≈ 3: the share is capped
    at 1, said in the detail, and the mix keeps its fitted shape."""
    rng = np.random.default_rng(4)
    L = PRIOR7.size
    U = rng.gamma(0.3, 1e5, size=(24 * 7, L)) * (rng.random((24 * 7, L)) < 0.3)
    true_w = np.array([0.02, 0.05, 0.1, 0.23, 0.3, 0.15, 0.15])
    fit = fl.fit_side(U, U @ (3.0 * true_w), PRIOR7, 1.0, ridge=1e-4)
    assert fit.source == "learned" and fit.leveraged_share == 1.0 and "capped at 1" in fit.detail
    assert np.abs(fit.weights - true_w).max() < 0.03


def test_calibration_falls_back_to_the_prior_without_liquidations():
    L = PRIOR7.size
    fit = fl.fit_side(np.ones((10, L)), np.zeros(10), PRIOR7, 1.0)
    assert fit.source == "prior" and np.allclose(fit.weights, PRIOR7)
    with pytest.raises(ValueError, match="does not match"):
        fl.fit_side(np.ones((10, L)), np.zeros(9), PRIOR7, 1.0)


def test_bad_inputs_are_refused_with_the_shape_expected():
    with pytest.raises(ValueError, match="mark_low has shape"):
        run(make_inputs(mark_low=np.zeros(3)))
    with pytest.raises(ValueError, match="side must be"):
        fl.Book.from_columns({**fl.Book.empty().columns(), "side": np.array([0]),
                              **{f: np.zeros(1) for f in fl.Book.FIELDS if f != "side"}})
    with pytest.raises(ValueError, match="prior_weights"):
        fl.SideMix.prior(dataclasses.replace(FLOW, prior_weights=(1.0,)))


@pytest.mark.parametrize("trade_count", [0, 40])
def test_flow_sizes_come_from_the_one_size_rule_of_every_map(trade_count):
    """flow's size buckets are warehouse/trade_sizes.day_size_choice: the klines' mean trade when they carry
    trade counts, else the documented size prior, flagged with the cause (no second fallback of its own)."""
    import datetime as dt

    import duckdb

    from liq_pipeline.model.sizes import FLAG_SIZE_PRIOR, size_prior
    from liq_pipeline.warehouse.readers.flow import load_flow_inputs
    from liq_pipeline.warehouse.schema import ensure_tables
    from liq_pipeline.warehouse.trade_sizes import day_size_choice

    day = dt.date(2026, 1, 5)
    con = duckdb.connect()
    ensure_tables(con, "raw.agg_trades", "raw.klines")
    con.execute("""INSERT INTO raw.klines BY NAME SELECT 'BTCUSDT' AS symbol, DATE '2026-01-05' AS day, '15m' AS interval,
                   TIMESTAMP '2026-01-05' + INTERVAL 15 MINUTE * i AS open_time,
                   TIMESTAMP '2026-01-05' + INTERVAL 15 MINUTE * i + INTERVAL 899999 MILLISECOND AS close_time,
                   90000.0 AS open, 90100.0 AS high, 89900.0 AS low, 90000.0 AS close, 10.0 AS volume,
                   900000.0 + 1000.0 * i AS quote_volume, ? AS trade_count, 4.0 AS taker_buy_volume,
                   360000.0 AS taker_buy_quote_volume, 'archive' AS source FROM range(96) t(i)""", [trade_count])
    inputs, flags = load_flow_inputs(con, "BTCUSDT", day, GRID)
    expected = day_size_choice(con, "BTCUSDT", day, FLOW.size_buckets)
    np.testing.assert_allclose(inputs.sizes.notional_usd, expected.buckets.notional_usd)
    np.testing.assert_allclose(inputs.sizes.weight, expected.buckets.weight)
    prior_flags = [f for f in flags if f.startswith(FLAG_SIZE_PRIOR)]
    if trade_count:
        assert not expected.is_prior and not prior_flags
    else:
        np.testing.assert_allclose(inputs.sizes.notional_usd, size_prior(FLOW.size_buckets).notional_usd)
        assert prior_flags == [expected.flag] and "count = 0" in expected.flag


def test_old_cohorts_are_merged_per_day_and_kept_until_the_maximum_age():
    """Cells older than merge_after_hours merge per open day (same side, bucket, entry, size and funding paid)
    at their notional-weighted open time; the notional is kept whole until max_age_days."""
    now = DAY0_MS + 40 * 86_400_000
    ages_h = np.array([1.0, 2.0, 60.0, 62.0, 70.0, 24.0 * 29, 24.0 * 31])
    n = np.array([1.0, 2.0, 1.0, 3.0, 5.0, 7.0, 11.0])
    k = ages_h.size
    book = fl.Book.from_columns({
        "open_ms": (now - ages_h * fl.MS_PER_HOUR).astype(np.int64), "side": np.ones(k), "entry_price": np.full(k, 9e4),
        "lev_bucket": np.full(k, 2), "leverage": np.full(k, 10.0), "size_usd": np.full(k, 5e3), "mmr": np.full(k, 0.004),
        "lp_open": np.full(k, 81_500.0), "funding_paid": np.zeros(k), "weight": np.full(k, 0.27), "notional_usd": n})
    out, expired = fl.compact(book, now, FLOW)
    assert expired == 11.0 and out.total_usd == pytest.approx(n[:-1].sum())
    age = (now - out.open_ms) / fl.MS_PER_HOUR
    order = np.argsort(age)
    # two young hourly cells; 60 h and 62 h fall on one open day (merged, weighted age 61.5 h); 70 h on the one before
    day60, day70 = (now - 60 * fl.MS_PER_HOUR) // 86_400_000, (now - 70 * fl.MS_PER_HOUR) // 86_400_000
    expected_age = [1, 2, 61.5, 70, 24 * 29] if day60 != day70 else [1, 2, (60 + 3 * 62 + 5 * 70) / 9, 24 * 29]
    np.testing.assert_allclose(age[order], expected_age, atol=1e-3)


# ---------------------------------------------------------------------------------------------- variants' rules
def _rule_inputs(T=8, funding_8h=np.nan, entry_long_prob=None):
    return make_inputs(T=T, funding_8h=np.full(T, funding_8h), entry_long_prob=entry_long_prob)


def test_the_seed_split_rules_give_the_reference_long_shares():
    """even 0.5; ofi the bin's OFI probability; funding f_L/(f_L+f_S) (0.0003 → 1.2/2 = 0.6, |f| ≤ 1e-4 → 0.5);
    hybrid the OFI probability tilted by the same multipliers (liquidation-math.md §8.2)."""
    rule = {name: variants.get(name) for name in variants.SEED}
    q = np.array([0.8])
    tilted = _rule_inputs(funding_8h=0.0003, entry_long_prob=q)
    share = {name: fl.long_share_of_opens(tilted, v)[0] for name, v in rule.items()}
    assert np.allclose(share[variants.NAIVE], 0.5)
    assert share["ofi"].shape == (8, 1) and np.allclose(share["ofi"], 0.8)
    f_long, f_short = 1 + 0.2 * np.tanh(3.0), 1 - 0.2 * np.tanh(3.0)
    assert np.allclose(share["funding"], f_long / (f_long + f_short))
    assert np.allclose(share["hybrid"], 0.8 * f_long / (0.8 * f_long + 0.2 * f_short))
    at_interest = _rule_inputs(funding_8h=0.0001, entry_long_prob=q)  # not strictly above the threshold
    assert np.allclose(fl.long_share_of_opens(at_interest, rule["funding"])[0], 0.5)
    assert np.allclose(fl.long_share_of_opens(at_interest, rule["hybrid"])[0], 0.8)  # hybrid = ofi


def test_a_missing_ofi_or_funding_input_splits_evenly_and_says_so():
    bare = _rule_inputs()
    p, _, flags = fl.long_share_of_opens(bare, variants.get("hybrid"))
    assert np.allclose(p, 0.5) and fl.FLAG_SPLIT_NO_OFI in flags and fl.FLAG_SPLIT_NO_FUNDING in flags
    with pytest.raises(ValueError, match="entry_long_prob"):
        fl.long_share_of_opens(_rule_inputs(entry_long_prob=np.array([0.5, 0.5])), variants.get("ofi"))


def test_until_crossed_opens_only_where_oi_rises_and_shrinks_the_book_pro_rata():
    """The seed's close rule: no turnover (gross opens = max(ΔOI, 0)) and a uniform hazard, so where OI falls
    every cell loses the same fraction whatever its leverage or age."""
    v = variants.get(variants.NAIVE)
    params = fl.params_for(v)
    assert params.leverages == tuple(MODEL.leverages) and params.prior_weights == tuple(MODEL.leverage_weights)
    path = np.concatenate([np.full(5, 10e6), np.full(4, 12e6)])  # OI +2M at step 4
    opens, _ = fl.gross_opens(make_inputs(T=8, oi_path=path), 10e6, params)
    assert opens.sum() == pytest.approx(2e6) and opens[4] == pytest.approx(2e6)
    day1 = fl.run_day(fl.Book.empty(), make_inputs(T=8, oi_path=np.concatenate([[0.0], np.full(8, 10e6)])), GRID,
                      TABLE, fl.SideMix.prior(params), params, variant=v)
    before = day1.end_book
    falling = np.concatenate([np.full(5, 10e6), np.full(4, 8e6)])
    day2 = fl.run_day(before, make_inputs(T=8, day=1, oi_path=falling, high=np.full(8, np.nan),
                                          low=np.full(8, np.nan)), GRID, TABLE, fl.SideMix.prior(params), params,
                      variant=v)
    after = day2.end_book
    assert after.total_usd == pytest.approx(8e6, rel=1e-9) and day2.opened_usd.sum() == 0
    ratio = after.notional_usd / before.notional_usd
    assert np.allclose(ratio, 0.8, rtol=1e-9)  # every cell, whatever its leverage
    assert day1.long_share_open == pytest.approx(0.5)


def test_the_seed_rules_decay_with_the_configured_half_life():
    params = dataclasses.replace(fl.params_for(variants.get(variants.NAIVE)), decay_half_life_hours=1.0)
    start = fl.run_day(fl.Book.empty(), make_inputs(T=8, oi_path=np.concatenate([[0.0], np.full(8, 10e6)])), GRID,
                       TABLE, fl.SideMix.prior(params), dataclasses.replace(params, decay_half_life_hours=None)).end_book
    quiet = make_inputs(T=8, day=1, oi_path=np.full(9, np.nan), high=np.full(8, np.nan), low=np.full(8, np.nan))
    day = fl.run_day(start, quiet, GRID, TABLE, fl.SideMix.prior(params), params)  # 8 × 15 min = 2 half-lives
    assert day.end_book.total_usd == pytest.approx(start.total_usd / 4, rel=1e-9)
