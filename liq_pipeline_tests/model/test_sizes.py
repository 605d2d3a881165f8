"""Position sizes for the tier choice: measured from trades when the data has them, else the documented
prior, flagged with the true cause (klines with count = 0 are what third-party downloads carry)."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pytest

from liq_pipeline.model import sizes
from liq_pipeline.warehouse.schema import ensure_tables
from liq_pipeline.warehouse.trade_sizes import day_size_choice

DAY = dt.date(2026, 1, 5)


def test_prior_is_equal_notional_at_log_spaced_sizes():
    prior = sizes.size_prior(5)
    assert prior.notional_usd == pytest.approx([2_000, 10_000, 50_000, 250_000, 1_250_000])
    assert prior.weight == pytest.approx([0.2] * 5) and prior.weight.sum() == pytest.approx(1.0)
    assert sizes.size_prior(1).notional_usd == pytest.approx([np.sqrt(2_000 * 1_250_000)])
    with pytest.raises(ValueError, match="at least 1"):
        sizes.size_prior(0)


def test_measured_sizes_win_and_nothing_usable_gives_the_flagged_prior():
    measured = sizes.choose_sizes(np.array([1_000.0, 5_000.0, 20_000.0]), 3, "aggTrades of x", "unused")
    assert not measured.is_prior and measured.source == "aggTrades of x"
    for empty in (None, np.array([]), np.array([0.0, np.nan])):
        choice = sizes.choose_sizes(empty, 5, "aggTrades of x", "klines carry no trade counts")
        assert choice.is_prior and choice.flag == "size_prior: klines carry no trade counts"
        assert choice.buckets.notional_usd == pytest.approx(sizes.size_prior(5).notional_usd)


@pytest.fixture
def con():
    c = duckdb.connect()
    ensure_tables(c, "raw.agg_trades", "raw.klines")
    yield c
    c.close()


def _klines(con, count: int) -> None:
    con.execute("""INSERT INTO raw.klines BY NAME SELECT 'BTCUSDT' AS symbol, DATE '2026-01-05' AS day, '15m' AS interval,
                   TIMESTAMP '2026-01-05' + INTERVAL 15 MINUTE * i AS open_time,
                   TIMESTAMP '2026-01-05' + INTERVAL 15 MINUTE * i + INTERVAL 899999 MILLISECOND AS close_time,
                   90000.0 AS open, 90100.0 AS high, 89900.0 AS low, 90000.0 AS close, 10.0 AS volume,
                   900000.0 AS quote_volume, ? AS trade_count, 5.0 AS taker_buy_volume,
                   450000.0 AS taker_buy_quote_volume, 'archive' AS source FROM range(96) t(i)""", [count])


def test_klines_with_count_zero_fall_back_to_the_prior_and_say_why(con):
    _klines(con, 0)
    choice = day_size_choice(con, "BTCUSDT", DAY, 5)
    assert choice.is_prior
    assert "no aggTrades for BTCUSDT 2026-01-05, and none of its 96 klines has a trade count (count = 0" in choice.flag


def test_klines_with_counts_give_measured_sizes(con):
    _klines(con, 90)
    choice = day_size_choice(con, "BTCUSDT", DAY, 5)
    assert not choice.is_prior and "klines 2026-01-05" in choice.source
    assert choice.buckets.notional_usd == pytest.approx([10_000.0] * 5)  # 900,000 USD / 90 trades, every candle


def test_no_trades_and_no_klines_name_both(con):
    assert day_size_choice(con, "BTCUSDT", DAY, 5).flag == "size_prior: no aggTrades and no klines for BTCUSDT 2026-01-05"
