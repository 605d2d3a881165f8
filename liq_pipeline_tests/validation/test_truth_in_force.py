"""The true map of the validation is the speculators' book at day end with the liquidation prices in force
then (margins moved by funding and top-ups), not the prices at opening."""

from __future__ import annotations

import datetime as dt

import duckdb

from liq_pipeline.validation.truth import _true_open_positions
from liq_pipeline.warehouse.schema import ensure_tables

DAY = dt.date(2026, 1, 5)


def _positions(con) -> None:
    ensure_tables(con, "truth.positions")
    con.execute("""INSERT INTO truth.positions BY NAME
        SELECT 'BTCUSDT' AS symbol, DATE '2026-01-05' AS day, id AS position_id, side,
               TIMESTAMP '2026-01-05 03:00:00' AS open_time, NULL::TIMESTAMP AS close_time, 100000.0 AS entry_price,
               0.1 AS quantity, 10.0 AS leverage, 1000.0 AS isolated_margin_usd, liq AS liq_price, 1 AS bracket,
               'open' AS outcome, 'isolated' AS margin_mode, NULL::DOUBLE AS account_balance_usd
        FROM (VALUES (1, 'long', 90361.4), (2, 'short', 109561.8)) t(id, side, liq)""")


def test_the_true_map_uses_the_liquidation_prices_in_force_at_day_end():
    con = duckdb.connect()
    _positions(con)
    ensure_tables(con, "truth.open_positions")
    con.execute("""INSERT INTO truth.open_positions BY NAME
        SELECT 'BTCUSDT' AS symbol, DATE '2026-01-05' AS day, id AS position_id, pop AS population, side,
               'isolated' AS margin_mode, 100000.0 AS entry_price, 0.1 AS quantity, 10.0 AS leverage,
               margin AS isolated_margin_usd, liq AS liq_price, 1 AS bracket, 5.0 AS funding_paid_usd,
               100500.0 AS mark_price
        FROM (VALUES (1, 'speculator', 'long', 995.0, 90411.6), (2, 'speculator', 'short', 1005.0, 109566.8),
                     (-3, 'market_maker', 'short', 5e6, NULL)) t(id, pop, side, margin, liq)""")
    got = _true_open_positions(con, "BTCUSDT", DAY).sort_values("side")
    assert list(got["side"]) == ["long", "short"]  # the providers' holdings are not liquidatable leverage
    assert list(got["liq_price"]) == [90411.6, 109566.8]  # in force, not the 90,361.4 / 109,561.8 at opening
    assert list(got["isolated_margin_usd"]) == [995.0, 1005.0]
    assert (got["open_time"] == dt.datetime(2026, 1, 5, 3)).all()


def test_an_older_warehouse_without_day_end_truth_falls_back_to_the_price_at_opening():
    con = duckdb.connect()
    _positions(con)
    got = _true_open_positions(con, "BTCUSDT", DAY).sort_values("side")
    assert list(got["liq_price"]) == [90361.4, 109561.8]
