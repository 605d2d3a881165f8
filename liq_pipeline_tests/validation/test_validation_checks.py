"""Checks that can fail (validation/checks.py): the flow book's unscaled OI conservation, invariants
labelled as such, inconclusive never passed; and the block bootstrap over weeks (validation/bootstrap.py)."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pytest

from liq_pipeline.model import scoring, variants
from liq_pipeline.validation import checks
from liq_pipeline.validation.bootstrap import block_mean_interval, week_of
from liq_pipeline.validation.seed import OI_TOLERANCE_PCT
from liq_pipeline.warehouse.schema import ensure_tables

DAY = dt.date(2026, 1, 10)
OI = 1e9


def warehouse(book_usd: float | None, distribution_usd: float = OI) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_tables(con, "model.position_distribution", "model.position_signals", "model.flow_book")
    as_of = dt.datetime(2026, 1, 11)
    con.execute("INSERT INTO model.position_signals (symbol, day, as_of, mark_price, oi_usd, flags) "
                "VALUES ('BTCUSDT', ?, ?, 90000, ?, '')", [DAY, as_of, OI])
    for variant in ("volume_5050", "flow"):  # scaled to OI when written: the invariant
        con.execute("INSERT INTO model.position_distribution (symbol, day, variant, as_of, bin_id, price_mid, "
                    "long_usd, short_usd, long_share_pre_funding) VALUES ('BTCUSDT', ?, ?, ?, 1, 90000, ?, ?, 0.5)",
                    [DAY, variant, as_of, distribution_usd / 2, distribution_usd / 2])
    if book_usd is not None:
        for side, usd in (("long", 0.6 * book_usd), ("short", 0.4 * book_usd)):
            con.execute("INSERT INTO model.flow_book (symbol, day, variant, open_time, side, entry_price, lev_bucket, "
                        "leverage, size_usd, mmr, lp_open, funding_paid, weight, notional_usd) VALUES "
                        "('BTCUSDT', ?, ?, ?, ?, 90000, 0, 10, 5000, 0.004, 81000, 0, 1, ?)",
                        [DAY, variants.DEFAULT, as_of, side, usd])
        # Another variant's book (every variant has one): the check reads the learned variant's only.
        con.execute("INSERT INTO model.flow_book (symbol, day, variant, open_time, side, entry_price, lev_bucket, "
                    "leverage, size_usd, mmr, lp_open, funding_paid, weight, notional_usd) VALUES "
                    "('BTCUSDT', ?, ?, ?, 'long', 90000, 0, 10, 5000, 0.004, 81000, 0, 1, 1e12)",
                    [DAY, variants.NAIVE, as_of])
    return con


def verdict(con) -> tuple[str, str]:
    return checks.oi_verdict(checks.oi_table(con, [("BTCUSDT", DAY)], OI_TOLERANCE_PCT))


def test_oi_check_passes_when_the_unscaled_flow_book_holds_oi():
    v, text = verdict(warehouse(book_usd=1.02 * OI))
    assert v == scoring.PASS and "within 2.00 %" in text


def test_oi_check_fails_when_the_unscaled_flow_book_is_wrong():
    # The scaled distributions still sum to OI (the invariant holds): only the book's own notional is off.
    v, text = verdict(warehouse(book_usd=0.8 * OI))
    assert v == scoring.FAIL and "unscaled notional misses OI by up to 20.00 %" in text


def test_a_broken_invariant_is_reported_as_a_bug():
    v, text = verdict(warehouse(book_usd=OI, distribution_usd=1.1 * OI))
    assert v == scoring.FAIL and text.startswith("invariant broken")


def test_invariants_alone_are_inconclusive_not_passed():
    table = checks.oi_table(warehouse(book_usd=None), [("BTCUSDT", DAY)], OI_TOLERANCE_PCT)
    assert set(table["kind"]) == {checks.INVARIANT}
    assert checks.oi_verdict(table)[0] == scoring.INCONCLUSIVE


@pytest.mark.parametrize(("verdicts", "expected"), [
    ([scoring.PASS, scoring.PASS], (True, scoring.PASS)),
    ([scoring.PASS, scoring.MODERATE], (True, scoring.MODERATE)),
    ([scoring.PASS, scoring.INCONCLUSIVE], (False, scoring.INCONCLUSIVE)),
    ([scoring.INCONCLUSIVE], (False, scoring.INCONCLUSIVE)),
    ([], (False, scoring.INCONCLUSIVE)),
    ([scoring.INCONCLUSIVE, scoring.FAIL], (False, scoring.FAIL)),
])
def test_inconclusive_never_passes(verdicts, expected):
    assert checks.overall_verdict(verdicts) == expected


def test_week_blocks_keep_the_leading_parts_of_a_key():
    assert week_of("2026-01-05") == (2026, 2)
    assert week_of(("calm/7", "BTCUSDT", "2026-01-11")) == ("calm/7", "BTCUSDT", 2026, 2)


def test_block_bootstrap_is_wider_than_the_day_bootstrap_when_days_carry_over():
    rng = np.random.default_rng(1)
    days = [dt.date(2026, 1, 5) + dt.timedelta(days=i) for i in range(56)]
    # Eight weeks, each with its own level: days inside a week are strongly dependent.
    values = np.repeat(rng.normal(0.0, 1.0, 8), 7) + rng.normal(0.0, 0.1, 56)
    blocks = block_mean_interval(values, [week_of(d) for d in days])
    iid = scoring.bootstrap_mean_interval(values)
    assert blocks.mean == pytest.approx(values.mean())
    assert (blocks.high - blocks.low) > 2 * (iid.high - iid.low)


def test_block_bootstrap_needs_two_weeks():
    days = [dt.date(2026, 1, 5) + dt.timedelta(days=i) for i in range(7)]
    out = block_mean_interval(np.ones(7), [week_of(d) for d in days])
    assert out.low is None and out.high is None and not out.excludes_zero
    with pytest.raises(ValueError, match="one block label per value"):
        block_mean_interval(np.ones(3), [1, 2])
