"""The leverage mix's low end (model/leverage_prior.py): the prior derived from the real liquidation intensity,
the first-passage probability behind it, and the fit that learns the leveraged buckets and leaves the low
ones to the prior."""

import datetime as dt
import math

import numpy as np
import pytest
from scipy import integrate, stats

from liq_pipeline.config import FLOW
from liq_pipeline.model import leverage_prior as lp
from liq_pipeline.model.flow import bucket_points
from liq_pipeline.model.margin import table_for


def test_the_configured_prior_is_the_one_the_real_facts_give():
    """FlowParams.prior_weights = prior_weights(the buckets, the retail shape, 0.19 % of OI a day, 2.6 % daily
    vol, mean life 16 h / ln 2, BTCUSDT's first-tier MMR): one derivation, written down once."""
    mmr = float(table_for("BTCUSDT", dt.date(2026, 1, 10)).table.mmr[0])
    w, near = lp.prior_weights(bucket_points(FLOW.leverages, FLOW.leverage_points), np.asarray(FLOW.prior_leveraged_shape),
                               FLOW.low_leverage_buckets, FLOW.prior_liquidation_intensity, FLOW.prior_daily_vol,
                               FLOW.half_life_hours / math.log(2) / 24, mmr)
    assert np.allclose(FLOW.prior_weights, w, atol=2e-6) and sum(FLOW.prior_weights) == pytest.approx(1.0, abs=1e-12)
    assert 0.005 < near < 0.03  # about 1 % of the open interest can sit near liquidation at the real intensity
    assert w[:FLOW.low_leverage_buckets].sum() == pytest.approx(1 - near)


def test_first_passage_before_an_exponential_life_has_the_closed_form():
    """P = E_T[2Φ(−d / (σ√T))] over T ~ Exp(mean T̄) (the reflection principle, then the life) = exp(−d√(2/T̄)/σ)."""
    d, sigma, life = 0.03, 0.026, 0.96
    mc, _ = integrate.quad(lambda t: 2 * stats.norm.cdf(-d / (sigma * math.sqrt(t))) * math.exp(-t / life) / life,
                           0, np.inf)
    assert lp.liquidation_probability(np.array(d), sigma, life) == pytest.approx(mc, rel=1e-6)
    assert lp.liquidation_probability(np.array(0.0), sigma, life) == 1.0
    with pytest.raises(ValueError, match="must be positive"):
        lp.liquidation_probability(np.array(d), 0.0, life)


def test_the_prior_reproduces_the_intensity_it_was_tied_to():
    pts = bucket_points(FLOW.leverages, 3)
    life = FLOW.half_life_hours / math.log(2) / 24
    w, near = lp.prior_weights(pts, np.asarray(FLOW.prior_leveraged_shape), 2, 0.0019, 0.026, life, 0.004)
    assert lp.daily_intensity(pts, w, 0.026, life, 0.004) == pytest.approx(0.0019, rel=1e-3)
    # a calmer market lets more of the book sit near liquidation for the same intensity
    _, calmer = lp.prior_weights(pts, np.asarray(FLOW.prior_leveraged_shape), 2, 0.0019, 0.015, life, 0.004)
    assert calmer > near
    with pytest.raises(ValueError, match="leveraged weights"):
        lp.prior_weights(pts, np.ones(3), 2, 0.0019, 0.026, life, 0.004)


def test_the_fit_learns_the_leveraged_buckets_and_leaves_the_low_end_to_the_prior():
    rng = np.random.default_rng(1)
    L, low = len(FLOW.leverages), FLOW.low_leverage_buckets
    U = rng.gamma(1.0, 1.0, size=(200, L))
    U[:, :low] = 0.0  # no public liquidation reaches 1.5x or 3x
    beta = np.zeros(L)
    beta[low:] = 0.04 * np.asarray(FLOW.prior_leveraged_shape)[::-1]  # a shape unlike the prior's
    fit = lp.fit_with_low_end(U, U @ beta, np.asarray(FLOW.prior_weights), low, ridge=1e-6)
    assert fit.source == "learned" and fit.leveraged_share == 1.0
    assert fit.near_share == pytest.approx(beta.sum(), rel=1e-3)
    assert np.allclose(fit.weights[low:], beta[low:], atol=1e-5) and fit.weights.sum() == pytest.approx(1.0)
    assert fit.weights[0] == pytest.approx(fit.weights[1])  # the prior's even split of the rest
    none = lp.fit_with_low_end(U, np.zeros(200), np.asarray(FLOW.prior_weights), low, FLOW.ridge)
    assert none.source == "prior" and np.allclose(none.weights, FLOW.prior_weights)
    assert none.near_share == pytest.approx(sum(FLOW.prior_weights[low:]))
    full = lp.fit_with_low_end(U, U @ (50 * beta), np.asarray(FLOW.prior_weights), low, ridge=1e-6)
    assert full.near_share == 1.0 and full.weights[:low].sum() == 0.0 and "capped at 1" in full.detail
    with pytest.raises(ValueError, match="at least one"):
        lp.fit_with_low_end(U, U @ beta, np.asarray(FLOW.prior_weights), L, FLOW.ridge)


def test_buckets_the_mark_never_reached_are_not_identified():
    U = np.array([[0.0, 0.0, 0.001, 1.0], [0.0, 0.0, 0.0, 2.0]])
    assert lp.identified_buckets(U).tolist() == [False, False, False, True]
    assert lp.identified_buckets(U, min_share=1e-4).tolist() == [False, False, True, True]
    assert not lp.identified_buckets(np.zeros((3, 2))).any()


def test_one_near_liquidation_share_for_both_sides_keeps_each_sides_shape():
    """The sides' fitted shares differ (a few liquidations a day); the map holds their mean on both sides so the
    side balance near the mark stays the crowding signals'."""
    rng = np.random.default_rng(2)
    L, low = len(FLOW.leverages), FLOW.low_leverage_buckets
    U = rng.gamma(1.0, 1.0, size=(200, L))
    U[:, :low] = 0.0
    shape_long = np.asarray(FLOW.prior_leveraged_shape) / sum(FLOW.prior_leveraged_shape)
    shape_short = shape_long[::-1]
    beta_long = np.concatenate([np.zeros(low), 0.06 * shape_long])
    beta_short = np.concatenate([np.zeros(low), 0.02 * shape_short])
    prior = np.asarray(FLOW.prior_weights)
    fits = {"long": lp.fit_with_low_end(U, U @ beta_long, prior, low, ridge=1e-6),
            "short": lp.fit_with_low_end(U, U @ beta_short, prior, low, ridge=1e-6)}
    pooled = lp.pool_near_share(fits, low)
    for side, shape in (("long", shape_long), ("short", shape_short)):
        w = pooled[side].weights
        assert pooled[side].near_share == pytest.approx(0.04, rel=1e-3)
        assert w[low:].sum() == pytest.approx(0.04, rel=1e-3) and w.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(w[low:] / w[low:].sum(), shape, atol=1e-4)  # each side's own shape
        assert w[0] == pytest.approx(w[1]) and "pooled" in pooled[side].detail
    assert fits["long"].near_share == pytest.approx(0.06, rel=1e-3)  # the inputs are left as they were
