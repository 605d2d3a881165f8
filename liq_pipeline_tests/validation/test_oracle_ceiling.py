"""The oracle ceiling is a true upper bound: the project's own level engine (model.levels.project_levels),
fed any subset of the true components (entries, sides, sizes, leverage mix), never beats it on the true map."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from liq_pipeline.model import margin
from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.model.levels import LeverageMix, SizeBuckets, project_levels
from liq_pipeline.model.positions import mark_extremes_since
from liq_pipeline.sim import SimConfig, simulate
from liq_pipeline.validation import truth

SYMBOL = "BTCUSDT"
START = dt.date(2026, 1, 1)
DAYS = 4


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    out = tmp_path_factory.mktemp("oracle")
    simulate(SimConfig(symbols=(SYMBOL,), start=START, days=DAYS, seed=5, out_dir=out, trades_per_day=6_000,
                       positions_per_day=1_500, workers=1))
    day = START + dt.timedelta(days=DAYS - 1)
    positions = pd.read_parquet(out / "truth" / "positions" / f"{SYMBOL}.parquet")
    open_ = pd.read_parquet(out / "truth" / "open_positions" / f"{SYMBOL}.parquet")
    open_ = open_[(open_["day"] == pd.Timestamp(day).date()) & (open_["population"] == "speculator")]
    open_ = open_.merge(positions[["position_id", "open_time"]], on="position_id")
    open_ = open_[open_["liq_price"] > 0].assign(notional_usd=lambda f: f["quantity"] * f["entry_price"])
    marks = pd.concat([pd.read_csv(out / f"data/futures/um/daily/markPriceKlines/{SYMBOL}/1m/"
                                   f"{SYMBOL}-1m-{(START + dt.timedelta(days=i)).isoformat()}.zip")
                       for i in range(DAYS)])
    return positions, open_.reset_index(drop=True), marks, day


def overlap(side, price, usd, true: pd.DataFrame, grid: PriceGrid, mark: float | None = None) -> float:
    est = pd.DataFrame({"side": np.asarray(side, str), "price": np.asarray(price, float), "notional_usd": usd})
    tr = true.rename(columns={"liq_price": "price"})[["side", "price", "notional_usd"]]
    if mark is not None:
        est = est[np.abs(est["price"] / mark - 1) <= truth.MARK_WINDOW]
        tr = tr[np.abs(tr["price"] / mark - 1) <= truth.MARK_WINDOW]
    binned = [truth._binned(f["side"], f["price"], f["notional_usd"], grid) for f in (est, tr)]
    return truth._overlaps(*binned)["overlap"]


@pytest.mark.slow  # simulates a market
def test_the_oracle_is_not_beaten_by_the_engine_fed_true_components(market):
    positions, open_, marks, day = market
    table = margin.table_for(SYMBOL, day).table
    grid = PriceGrid("relative", 0.001)
    mark = float(open_["mark_price"].iloc[0])
    lev, w = truth.notional_weighted_mix(positions["leverage"].to_numpy(), (positions["quantity"]
                                                                            * positions["entry_price"]).to_numpy())
    candle_open = pd.to_datetime(marks["open_time"], unit="ms").to_numpy()
    low, high = mark_extremes_since(open_["open_time"].to_numpy(), candle_open, marks["low"].to_numpy(float),
                                    marks["high"].to_numpy(float), mark)
    oracle = truth.oracle_map(open_, lev, w, table, np.nan_to_num(low, nan=-np.inf), np.nan_to_num(high, nan=np.inf))
    ceiling = overlap(oracle.side, oracle.price, oracle.notional_usd, open_, grid)
    ceiling_near = overlap(oracle.side, oracle.price, oracle.notional_usd, open_, grid, mark)

    # The engine takes entry notional per price: the true entries, summed per 0.1 % bin, each side apart.
    usd = open_["notional_usd"].to_numpy(float)
    is_long = (open_["side"] == "long").to_numpy()
    bins, inv = np.unique(grid.bin_id(open_["entry_price"].to_numpy(float)), return_inverse=True)
    entry = grid.mid(bins)
    long_e, short_e = (np.bincount(inv, usd * m, bins.size) for m in (is_long, ~is_long))
    true_sizes = SizeBuckets(np.quantile(usd, [0.1, 0.3, 0.5, 0.7, 0.9]), np.full(5, 0.2))
    # The mix as the old ceiling took it: whole leverages, weighted by position count.
    rounded, counts = np.unique(np.maximum(np.round(positions["leverage"].to_numpy()), 1), return_counts=True)
    subsets = {
        "entries, sides, sizes, true mix": (long_e, short_e, LeverageMix.of(lev, w), true_sizes),
        "entries, sides, true mix, one size": (long_e, short_e, LeverageMix.of(lev, w),
                                               SizeBuckets(np.array([np.median(usd)]), np.array([1.0]))),
        "entries, sides, count-weighted whole mix": (long_e, short_e, LeverageMix.of(rounded, counts / counts.sum()),
                                                     true_sizes),
        "entries, true mix, sides unknown": ((long_e + short_e) / 2, (long_e + short_e) / 2, LeverageMix.of(lev, w),
                                             true_sizes),
    }
    for name, (long_usd, short_usd, mix, size_buckets) in subsets.items():
        levels = project_levels(entry, long_usd, short_usd, grid, table, mix, size_buckets)
        side = np.where(levels.side == margin.LONG, "long", "short")
        price = grid.mid(levels.bin_id)
        engine = overlap(side, price, levels.notional_usd, open_, grid)
        engine_near = overlap(side, price, levels.notional_usd, open_, grid, mark)
        assert engine <= ceiling + 1e-9, f"{name}: engine {engine:.4f} beats the ceiling {ceiling:.4f}"
        assert engine_near <= ceiling_near + 1e-9, f"{name} (±10 %): {engine_near:.4f} > {ceiling_near:.4f}"


def test_the_mix_is_weighted_by_notional_and_keeps_the_simulators_values():
    lev, w = truth.notional_weighted_mix(np.array([10.0, 10.0, 2.0, 1.7342]), np.array([1.0, 1.0, 6.0, 2.0]))
    assert list(lev[lev == np.round(lev)]) == [2.0, 10.0]
    assert w[lev == 2.0][0] == pytest.approx(0.6) and w[lev == 10.0][0] == pytest.approx(0.2)
    cross = lev[lev != np.round(lev)][0]
    # Grouped on 1/L by one model bin (0.1 %): the liquidation distance moves by at most half a bin.
    assert abs(1 / cross - 1 / 1.7342) <= truth.ORACLE_MARGIN_FRACTION_STEP / 2


def test_oracle_cells_keep_every_binned_figure_exact():
    """Summing the oracle's (position × leverage) points per cell (the intersection of the 0.1 % bin, the 1 % bin
    and the ±10 % window) leaves the notional per bin of both grids and inside the window unchanged."""
    from liq_pipeline.model.grid import grid_for

    rng = np.random.default_rng(3)
    n = 3_000
    pos = pd.DataFrame({"notional_usd": rng.lognormal(9, 1.5, n), "entry_price": rng.normal(90_000, 2_000, n),
                        "side": np.where(rng.random(n) < 0.5, "long", "short")})
    lev = np.unique(np.r_[np.arange(1, 126), 1 / np.arange(0.008, 0.66, 0.004)])
    w = rng.random(lev.size)
    w /= w.sum()
    table = margin.table_for("BTCUSDT", dt.date(2026, 1, 5)).table
    low, high = pos["entry_price"].to_numpy() * 0.95, pos["entry_price"].to_numpy() * 1.05
    grid, coarse, mark = grid_for("BTCUSDT"), PriceGrid("relative", truth.COARSE_BIN_WIDTH), 90_000.0

    def cell_of(p):
        return (grid.bin_id(p) << 22) + ((coarse.bin_id(p) & 0xFFFFF) << 1) + truth._near(p, mark).astype(np.int64)

    points = truth.oracle_map(pos, lev, w, table, low, high)
    cells = truth.oracle_map(pos, lev, w, table, low, high, cell_of=cell_of)
    assert cells.price.size < points.price.size / 100
    for g in (grid, coarse):
        a, b = (truth._binned(o.side, o.price, o.notional_usd, g).groupby(["side", "bin_id"])["notional_usd"].sum()
                for o in (points, cells))
        assert a.index.equals(b.index)
        np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-12)
    near_a, near_b = truth._near(points.price, mark), truth._near(cells.price, mark)
    assert points.notional_usd[near_a].sum() == pytest.approx(cells.notional_usd[near_b].sum(), rel=1e-12)
    assert cells.unplaced_positions == points.unplaced_positions


def _days_of_positions(rng, days: int = 4, n: int = 1_500):
    """Positions open at the end of consecutive days: most carried over, some closed, some opened (a few
    with the same side, size and entry as another), the mark's extremes widening and the mix growing."""
    def opened(k):
        return pd.DataFrame({"notional_usd": rng.lognormal(9, 1.5, k), "entry_price": rng.normal(90_000, 2_000, k),
                             "side": np.where(rng.random(k) < 0.5, "long", "short")})

    book, out = opened(n), []
    lev_all = np.unique(np.r_[np.arange(1, 126), 1 / np.arange(0.008, 0.66, 0.004)])
    for d in range(days):
        if d:
            book = pd.concat([book.sample(frac=0.85, random_state=d), opened(n // 5), book.iloc[:3]],
                             ignore_index=True)
        lev = lev_all[: lev_all.size - 40 * (days - 1 - d)]  # the mix only grows
        w = rng.random(lev.size)
        out.append((book.reset_index(drop=True), lev, w / w.sum(), book["entry_price"].to_numpy() * (0.97 - 0.01 * d),
                    book["entry_price"].to_numpy() * (1.03 + 0.01 * d), 90_000.0 + 500 * d))
    return out


def test_oracle_prices_kept_across_days_give_the_same_bits_as_each_day_alone():
    """OraclePrices (a position's prices and cells kept from one day to the next, rows of closed positions
    reused) gives every day's oracle map bit for bit as computing that day alone."""
    from liq_pipeline.model.grid import grid_for

    rng = np.random.default_rng(11)
    table = margin.table_for("BTCUSDT", dt.date(2026, 1, 5)).table
    grid, coarse = grid_for("BTCUSDT"), PriceGrid("relative", truth.COARSE_BIN_WIDTH)
    days = _days_of_positions(rng)
    kept = truth.OraclePrices(table, days[-1][1])
    for pos, lev, w, low, high, mark in days:
        def cells(p, mark=mark):
            return (grid.bin_id(p) << 22) + ((coarse.bin_id(p) & 0xFFFFF) << 1) + truth._near(p, mark).astype(np.int64)

        alone = truth.oracle_map(pos, lev, w, table, low, high, cell_of=cells)
        cached = truth.oracle_map(pos, lev, w, table, low, high, cell_of=cells, prices=kept)
        for a, b in ((alone.side, cached.side), (alone.price, cached.price), (alone.notional_usd, cached.notional_usd)):
            assert np.array_equal(a, b)
        assert alone.unplaced_positions == cached.unplaced_positions
    assert kept.price.shape[0] < 2 * len(days[-1][0])  # closed positions' rows were reused
    unpriced = truth.oracle_map(days[0][0], days[0][1], days[0][2], table, days[0][3], days[0][4],
                                prices=truth.OraclePrices(table, days[-1][1]))  # points, without cells
    assert np.array_equal(unpriced.price, truth.oracle_map(*days[0][:3], table, *days[0][3:5]).price)


def test_oracle_prices_refuse_a_leverage_they_do_not_hold():
    table = margin.table_for("BTCUSDT", dt.date(2026, 1, 5)).table
    kept = truth.OraclePrices(table, np.array([5.0, 10.0]))
    with pytest.raises(ValueError, match="1 leverages of the day are not among the kept ones"):
        kept.columns_for(np.array([5.0, 20.0]))
