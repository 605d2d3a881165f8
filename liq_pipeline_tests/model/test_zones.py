"""Liquidation zones: weighted DBSCAN on constructed level sets."""

from __future__ import annotations

import numpy as np
import pytest

from liq_pipeline.model.grid import grid_for
from liq_pipeline.model.zones import find_zones

GRID = grid_for("BTCUSDT")


def _bumps(centres: list[float], masses: list[float], background: float = 0.0):
    """Levels on the 0.1 % grid from 80k to 100k: Gaussian bumps (σ 0.3 %) over a flat background."""
    bins = np.arange(GRID.bin_id(80_000.0), GRID.bin_id(100_000.0))
    price = GRID.mid(bins)
    notional = np.full(price.size, background)
    for c, m in zip(centres, masses, strict=True):
        bump = np.exp(-0.5 * (np.log(price / c) / 0.003) ** 2)
        notional += m * bump / bump.sum()
    return price, notional


def test_two_separated_clusters_are_found_ranked_by_notional():
    price, notional = _bumps([85_000, 92_000], [3e7, 6e7])
    z = find_zones(price, notional, mark_price=100_000, reach_days=None)
    # The 92k bump (within 10 % of the mark) is cut to a 1 % band around its peak plus its two thin tails;
    # the 85k one (15 % away) stays whole as an aggregate.
    assert len(z) == 4
    assert z.rank.tolist() == [1, 2, 3, 4]
    assert z.kind.tolist() == ["band", "aggregate", "band", "band"]
    assert z.centroid_price[0] == pytest.approx(92_000, rel=2e-3)
    assert z.centroid_price[1] == pytest.approx(85_000, rel=2e-3)
    assert z.notional_usd[0] > z.notional_usd[1]
    assert np.all(z.price_low <= z.centroid_price) and np.all(z.centroid_price <= z.price_high)
    # Distance is signed: both zones are below the mark.
    assert z.distance_pct[0] == pytest.approx((z.centroid_price[0] / 100_000 - 1) * 100)
    assert np.all(z.distance_pct < 0)
    assert z.share_of_side.sum() <= 1.0 + 1e-12 and z.share_of_side[0] > 0.5


def test_zones_rank_by_what_the_mark_can_reach_and_ignore_the_far_book():
    """The book holds the far low-leverage open interest (most of it, 25-60 % from the mark): zones leave it out
    and rank the leveraged clusters by notional × the probability the mark touches them within a week."""
    price, notional = _bumps([84_000, 93_000, 96_500], [5e8, 2e7, 1.5e7])  # 16 %, 7 % and 3.5 % below 100k
    old = find_zones(price, notional, mark_price=100_000, reach_days=None)
    assert old.centroid_price[0] == pytest.approx(84_000, rel=2e-3)  # by notional: the far book first
    z = find_zones(price, notional, mark_price=100_000, daily_vol=0.026, reach_days=7.0)
    assert z.centroid_price[0] == pytest.approx(96_500, rel=3e-3)  # nearer, smaller: reached more often
    assert z.centroid_price[1] == pytest.approx(93_000, rel=3e-3)
    assert np.all(np.diff(z.reach_usd) <= 0) and np.all(z.reach_usd <= z.notional_usd)
    # Calmer market: the 16 % cluster is out of reach altogether (P < 1 % within a week at 1 % a day).
    calm = find_zones(price, notional, mark_price=100_000, daily_vol=0.01, reach_days=7.0)
    assert np.all(calm.price_low > 88_000)
    # A wilder one brings it back, ranked by reach, not by its size.
    wild = find_zones(price, notional, mark_price=100_000, daily_vol=0.06, reach_days=7.0)
    assert wild.price_low.min() < 85_000
    # The default horizon, one day (until the zones are recomputed): only the 3.5 % cluster is within reach.
    day = find_zones(price, notional, mark_price=100_000, daily_vol=0.026)
    assert len(day) >= 1 and np.all(day.price_low > 95_000)
    assert find_zones(price, notional, mark_price=100_000).rank.tolist() == day.rank.tolist()  # default σ 2.6 %


def test_reach_probability_and_realised_vol():
    from liq_pipeline.model.zones import reach_probability, realised_daily_vol

    p = reach_probability(np.array([100.0, 90.0, 80.0, 111.1]), 100.0, 0.026, 7.0)
    assert p[0] == pytest.approx(1.0)
    assert p[1] == pytest.approx(0.126, abs=0.002)  # erfc(0.105 / (0.026·√14))
    assert p[2] < 0.02 and p[1] > p[2]
    assert p[3] == pytest.approx(p[1], rel=0.01)  # symmetric in log price
    with pytest.raises(ValueError, match="positive"):
        reach_probability(np.array([1.0]), 1.0, 0.0, 7.0)
    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02 / np.sqrt(24), 24 * 60)))
    assert realised_daily_vol(closes, 60.0) == pytest.approx(0.02, rel=0.05)
    assert np.isnan(realised_daily_vol(closes[:5], 60.0))


def test_zones_are_denser_than_background_and_background_is_noise():
    price, notional = _bumps([90_000], [5e7], background=2e4)
    z = find_zones(price, notional, mark_price=95_000)
    assert len(z) >= 1 and z.peak_price[0] == pytest.approx(90_000, rel=1e-3)
    assert z.price_low.min() > 88_000 and z.price_high.max() < 92_000
    total = notional.sum()
    assert z.share_of_side[0] == pytest.approx(z.notional_usd[0] / total)
    assert z.share_of_side.sum() < 1.0  # the flat background is counted in the side but in no zone


def test_eps_is_relative_to_price():
    """The same relative layout at $100 and at $100k gives the same zones (log-price distance)."""
    price, notional = _bumps([85_000, 92_000], [3e7, 6e7])
    a = find_zones(price, notional, 100_000)
    b = find_zones(price / 1000, notional, 100)
    assert len(a) == len(b)
    np.testing.assert_allclose(a.centroid_price / 1000, b.centroid_price, rtol=1e-9)
    np.testing.assert_allclose(a.share_of_side, b.share_of_side, rtol=1e-9)


def test_empty_or_zero_side_gives_no_zones():
    assert len(find_zones(np.zeros(0), np.zeros(0), 100.0)) == 0
    assert len(find_zones(np.array([90.0, 91.0]), np.zeros(2), 100.0)) == 0


def test_bad_input_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="positive"):
        find_zones(np.array([-1.0]), np.array([1.0]), 100.0)
    with pytest.raises(ValueError, match="mark price"):
        find_zones(np.array([1.0]), np.array([1.0]), float("nan"))
    with pytest.raises(ValueError, match="shape"):
        find_zones(np.array([1.0, 2.0]), np.array([1.0]), 100.0)


def test_a_wide_cluster_near_the_mark_is_cut_into_bands_of_at_most_one_percent():
    # A 10 %-wide plateau of levels just below the mark (as the `flow` long zone 76,947–84,950 was) with two peaks.
    bins = np.arange(GRID.bin_id(76_000.0), GRID.bin_id(85_000.0))
    price = GRID.mid(bins)
    notional = np.full(price.size, 1e5)
    notional[np.argmin(abs(price - 80_000))] = 8e5
    notional[np.argmin(abs(price - 83_000))] = 6e5
    # Sparse levels elsewhere, so the plateau is denser than the side's average.
    far = GRID.mid(np.arange(GRID.bin_id(60_000.0), GRID.bin_id(70_000.0)))
    levels = np.concatenate([price, far]), np.concatenate([notional, np.full(far.size, 1e3)])
    z = find_zones(*levels, mark_price=86_000, reach_days=None)
    whole = find_zones(*levels, mark_price=86_000, band_width_rel=0.5, reach_days=None)  # no cut: one cluster
    near = z.kind == "band"
    assert near.sum() >= 9  # ~10 % of price in bands of ≤ 1 %
    assert np.all(z.price_high[near] - z.price_low[near] <= 0.01 * 86_000 + 1e-9)
    assert np.all(np.abs(z.centroid_price[~near] / 86_000 - 1) > 0.10)
    # The top bands are the two peaks, each with its peak level inside it.
    assert z.peak_price[0] == pytest.approx(80_000, rel=1e-3) and z.peak_price[1] == pytest.approx(83_000, rel=1e-3)
    assert np.all((z.price_low <= z.peak_price) & (z.peak_price <= z.price_high))
    # Nothing is lost by cutting: the bands add up to the uncut cluster.
    assert len(whole) == 1 and whole.price_high[0] - whole.price_low[0] > 0.09 * 86_000
    assert z.notional_usd[near].sum() == pytest.approx(whole.notional_usd[0], rel=1e-9)
    # Bands never overlap.
    lo, hi = np.sort(z.price_low[near]), np.sort(z.price_high[near])
    assert np.all(lo[1:] > hi[:-1])


def test_a_wide_cluster_far_from_the_mark_stays_whole_as_an_aggregate():
    bins = np.arange(GRID.bin_id(60_000.0), GRID.bin_id(66_000.0))
    price = GRID.mid(bins)
    notional = np.full(price.size, 1e5)
    sparse = GRID.mid(np.arange(GRID.bin_id(80_000.0), GRID.bin_id(99_000.0)))
    z = find_zones(np.concatenate([price, sparse]), np.concatenate([notional, np.full(sparse.size, 1e3)]),
                   mark_price=100_000, reach_days=None)
    assert len(z) == 1 and z.kind[0] == "aggregate"
    assert z.price_high[0] - z.price_low[0] > 0.05 * 100_000


def test_dbscan_1d_finds_the_clusters_of_scikit_learns_dbscan():
    from sklearn.cluster import DBSCAN

    from liq_pipeline.model.zones import dbscan_1d

    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(c, 0.01, 60) for c in (0.0, 0.2, 0.25, 0.6)] + [rng.uniform(-0.5, 1.0, 80)])
    w = rng.lognormal(0, 1, x.size)
    eps = 0.012
    order = np.argsort(x)
    cum = np.concatenate([[0.0], np.cumsum(w[order])])
    xs = x[order]
    nbhd = cum[np.searchsorted(xs, x + eps, "right")] - cum[np.searchsorted(xs, x - eps, "left")]
    threshold = 1.5 * nbhd.mean()
    ours = dbscan_1d(x, nbhd >= threshold, eps)
    theirs = DBSCAN(eps=eps, min_samples=1).fit_predict(x[:, None], sample_weight=w / threshold)
    assert (ours >= 0).sum() > 100 and len(set(ours[ours >= 0])) >= 3
    np.testing.assert_array_equal(ours < 0, theirs < 0)
    # The same partition (labels may be numbered differently).
    same_ours = ours[:, None] == ours[None, :]
    same_theirs = theirs[:, None] == theirs[None, :]
    np.testing.assert_array_equal(same_ours, same_theirs)


def test_a_band_of_one_level_has_its_centroid_inside_its_range():
    price = np.array([91107.11493939236, 95000.0, 95001.0])
    z = find_zones(price, np.array([3.3e6, 1.0, 1.0]), mark_price=92_000)
    assert np.all((z.price_low <= z.centroid_price) & (z.centroid_price <= z.price_high))
