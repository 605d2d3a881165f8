"""`facts.held_out_real`: the real market judged by the same test as a simulated one (each real window of the
simulated length held out and banded with the days outside it), so a FAIL of `liq realism` can be read against how often real windows fail."""

from __future__ import annotations

import numpy as np

from liq_pipeline.sim import facts
from liq_pipeline_tests.support.realism_markets import stationary_market


def test_each_run_of_weeks_is_held_out_once_and_every_statistic_is_counted():
    held = facts.held_out_real(facts.fact_rows(stationary_market(8), 1), window_days=14, resamples=40)
    assert held.windows == 7 and len(held.failed_counts) == 7
    assert set(held.failures) == {s.name for s in facts.STATISTICS}
    assert held.all_pass == sum(c == 0 for c in held.failed_counts)
    assert sum(held.failures.values()) == sum(held.failed_counts)


def test_a_week_unlike_the_others_fails_when_it_is_held_out():
    oi = np.full(8 * facts.HOURS_PER_WEEK, 2.4e9)
    oi[3 * facts.HOURS_PER_WEEK:4 * facts.HOURS_PER_WEEK] = 0.6e9  # week 4: four times the liquidations per OI
    held = facts.held_out_real(facts.fact_rows(stationary_market(8, oi_usd=oi), 1), window_days=7, resamples=40)
    assert held.failures["liq_pct_oi_per_day"] >= 1
    assert held.failed_counts[3] >= 1


def test_a_real_window_too_short_to_hold_out_gives_none():
    assert facts.held_out_real(facts.fact_rows(stationary_market(3), 1), window_days=14, resamples=40) is None
