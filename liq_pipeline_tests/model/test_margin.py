"""Exact Binance USD-M liquidation prices: the reference vectors, tier selection, dated tables, and the
level projection built on them (liquidation-math.md §2-§6, brackets.json)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from liq_pipeline.model import margin
from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.model.levels import LeverageMix, SizeBuckets, project_levels, size_buckets_from_trades
from liq_pipeline.model.margin import (
    LONG,
    SHORT,
    BracketError,
    BracketTable,
    isolated_liquidation_price_at_leverage,
    liquidation_price,
    load_bracket_tables,
    simplified_liquidation_price,
    table_for,
    tiered_liquidation_price,
)
from liq_pipeline_tests.support.paths import FIXTURES

VECTORS = json.loads((FIXTURES / "liquidation-vectors.json").read_text(),
                     parse_float=Decimal)["vectors"]
TABLES = {t.id: t for t in load_bracket_tables()}


def _side(v: dict) -> int:
    return LONG if v["side"] == "long" else SHORT


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_plain_formula_reproduces_every_vector(v):
    lp = liquidation_price(_side(v), float(v["quantity"]), float(v["entry_price"]), float(v["wallet_balance"]),
                           float(v["mmr"]), float(v["cum"]), float(v.get("tmm_other") or 0),
                           float(v.get("upnl_other") or 0))
    assert abs(float(lp) - float(v["expected_liq_price"])) < 1e-6


@pytest.mark.parametrize("v", [v for v in VECTORS if v["bracket_ref"]], ids=lambda v: v["id"])
def test_tier_selection_picks_the_referenced_bracket(v):
    table_id, bracket = v["bracket_ref"].split("#")
    got = tiered_liquidation_price(_side(v), float(v["quantity"]), float(v["entry_price"]),
                                   float(v["wallet_balance"]), TABLES[table_id],
                                   float(v.get("tmm_other") or 0), float(v.get("upnl_other") or 0))
    assert int(got.bracket) == int(bracket)
    assert abs(float(got.price) - float(v["expected_liq_price"])) < 1e-6
    assert not got.beyond_table and not got.no_liquidation


def test_vectors_are_vectorised_in_one_call():
    iso = [v for v in VECTORS if v["margin_mode"] == "isolated"]
    lp = liquidation_price(np.array([_side(v) for v in iso]), np.array([float(v["quantity"]) for v in iso]),
                           np.array([float(v["entry_price"]) for v in iso]),
                           np.array([float(v["wallet_balance"]) for v in iso]),
                           np.array([float(v["mmr"]) for v in iso]), np.array([float(v["cum"]) for v in iso]))
    assert np.max(np.abs(lp - np.array([float(v["expected_liq_price"]) for v in iso]))) < 1e-6


@pytest.mark.parametrize("table_id", sorted(TABLES))
def test_every_shipped_table_obeys_the_cum_continuity_rule(table_id):
    assert TABLES[table_id].continuity_errors() == []


def test_continuity_check_catches_a_wrong_cum():
    raw = next(t for t in json.loads((Path(margin.__file__).parent.parent / "reference" / "brackets.json")
                                     .read_text())["tables"] if t["id"] == "BTCUSDT@2023-11-28")
    raw = json.loads(json.dumps(raw))
    raw["tiers"][2]["cum"] = 1250
    assert any("tier 3 cum" in e for e in BracketTable.from_dict(raw).continuity_errors())


def test_table_for_picks_the_newest_table_in_force():
    assert table_for("BTCUSDT", dt.date(2025, 8, 19)).table.id == "BTCUSDT@2025-08-19"
    assert table_for("BTCUSDT", dt.date(2026, 1, 5)).table.id == "BTCUSDT@2025-08-19"
    choice = table_for("BTCUSDT", dt.date(2025, 8, 18))
    assert choice.table.id == "BTCUSDT@2023-11-28" and choice.note == ""


def test_table_for_before_every_table_falls_back_to_the_oldest_with_a_note():
    choice = table_for("BTCUSDT", dt.date(2020, 1, 1))
    assert choice.table.id == "BTCUSDT@2023-11-28"
    assert "precedes" in choice.note


def test_table_for_undated_eth_is_used_for_every_date_with_a_note():
    for day in (dt.date(2019, 1, 1), dt.date(2026, 1, 1)):
        choice = table_for("ETHUSDT", day)
        assert choice.table.id == "ETHUSDT@ccxt-fixture" and "undated" in choice.note


def test_table_for_unknown_symbol_is_a_clear_error():
    with pytest.raises(BracketError, match="no maintenance-margin bracket table for 'DOGEUSDT'"):
        table_for("DOGEUSDT", dt.date(2026, 1, 1))


def test_tier_moves_down_at_the_liquidation_price_2023_example():
    # EP 52,000, 10x: entry notional is tier 2, but at LP the notional is < 50,000, so tier 1 applies.
    got = tiered_liquidation_price(LONG, 1.0, 52_000.0, 5_200.0, TABLES["BTCUSDT@2023-11-28"])
    assert int(got.bracket) == 1
    assert float(got.price) == pytest.approx(46_987.95, abs=0.005)
    tier2 = liquidation_price(LONG, 1.0, 52_000.0, 5_200.0, 0.005, 50.0)
    assert float(tier2) == pytest.approx(46_984.92, abs=0.005)


def test_table_date_changes_the_tier_of_trade_a():
    a_2025 = tiered_liquidation_price(LONG, 1.0, 84_000.0, 8_400.0, TABLES["BTCUSDT@2025-08-19"])
    a_2023 = tiered_liquidation_price(LONG, 1.0, 84_000.0, 8_400.0, TABLES["BTCUSDT@2023-11-28"])
    assert (int(a_2025.bracket), int(a_2023.bracket)) == (1, 2)
    assert float(a_2025.price) == pytest.approx(75_903.614458, abs=1e-6)
    assert float(a_2023.price) == pytest.approx(75_929.648241, abs=1e-6)


def test_notional_beyond_the_partial_2025_table_is_flagged_not_priced():
    table = TABLES["BTCUSDT@2025-08-19"]
    notional = np.array([1_000_000.0, 11_000_000.0, 12_000_000.0, 20_000_000.0])
    got = isolated_liquidation_price_at_leverage(SHORT, notional, 100_000.0, 10.0, table)
    assert got.beyond_table.tolist() == [False, False, True, True]
    assert np.isnan(got.price[2:]).all() and np.isfinite(got.price[:2]).all()
    # A long's notional shrinks towards LP: 20M at 2x lands in tier 4 (10M at LP), 30M at 2x beyond it.
    longs = isolated_liquidation_price_at_leverage(LONG, np.array([20e6, 30e6]), 100_000.0, 2.0, table)
    assert longs.beyond_table.tolist() == [False, True]
    assert int(longs.bracket[0]) == 4 and np.isnan(longs.price[1])


def test_long_without_liquidation_price_is_reported():
    # 1x long with a tiny cum-free tier: LP = EP(1 - 1)/(1 - MMR) = 0 → no liquidation.
    got = isolated_liquidation_price_at_leverage(LONG, 10_000.0, 100.0, 1.0, TABLES["BTCUSDT@2025-08-19"])
    assert bool(got.no_liquidation) and np.isnan(got.price)


@pytest.mark.parametrize("lev,mmr,long_exact,short_exact", [
    (10, 0.004, 90.361446, 109.561753), (20, 0.005, 95.477387, 104.477612),
    (50, 0.004, 98.393574, 101.593625), (125, 0.004, 99.598394, 100.398406),
])
def test_simplified_formula_is_above_exact_on_both_sides(lev, mmr, long_exact, short_exact):
    # liquidation-math.md §6: EP 100, cum 0, WB = N/L.
    exact_long = float(liquidation_price(LONG, 1.0, 100.0, 100.0 / lev, mmr, 0.0))
    exact_short = float(liquidation_price(SHORT, 1.0, 100.0, 100.0 / lev, mmr, 0.0))
    assert exact_long == pytest.approx(long_exact, abs=1e-6)
    assert exact_short == pytest.approx(short_exact, abs=1e-6)
    assert float(simplified_liquidation_price(LONG, 100.0, lev, mmr)) > exact_long
    assert float(simplified_liquidation_price(SHORT, 100.0, lev, mmr)) > exact_short


def _projection(long_usd, short_usd, entry=(95_000.0, 100_000.0, 105_000.0), sizes=None):
    if sizes is None:
        sizes = size_buckets_from_trades(np.array([500.0, 2_000.0, 10_000.0, 50_000.0, 400_000.0, 2_000_000.0]), 3)
    return project_levels(np.array(entry), np.array(long_usd), np.array(short_usd), PriceGrid("relative", 0.001),
                          TABLES["BTCUSDT@2023-11-28"], LeverageMix.of((5, 10, 20, 50, 100), (.2, .35, .25, .15, .05)),
                          sizes)


def test_project_levels_conserves_notional_and_collateral_is_notional_over_leverage():
    long_usd, short_usd = [1e6, 3e6, 2e6], [2e6, 1e6, 4e6]
    got = _projection(long_usd, short_usd)
    assert got.notional_usd.sum() + got.unpriced_usd == pytest.approx(sum(long_usd) + sum(short_usd), rel=1e-12)
    assert got.unpriced_usd == 0
    # Collateral ≥ notional/100 (highest leverage) and ≤ notional/5 (lowest) in every bin.
    assert np.all(got.collateral_usd <= got.notional_usd / 5 + 1e-6)
    assert np.all(got.collateral_usd >= got.notional_usd / 100 - 1e-6)
    assert got.notional_usd[got.side == LONG].sum() == pytest.approx(sum(long_usd))


def test_project_levels_longs_below_entry_and_shorts_above():
    grid = PriceGrid("relative", 0.001)
    got = _projection([1e6], [1e6], entry=(100_000.0,), sizes=SizeBuckets(np.array([1_000.0]), np.array([1.0])))
    assert np.all(grid.high(got.bin_id[got.side == LONG]) <= 100_000.0 + 1e-6)
    assert np.all(grid.low(got.bin_id[got.side == SHORT]) >= 100_000.0 - 1e-6)
    # 100x long at EP 100,000: liquidation about 0.6 % below entry, so the nearest long bin is that close.
    assert grid.high(got.bin_id[got.side == LONG].max()) > 99_300.0


def test_project_levels_caps_leverage_at_the_tier_maximum():
    # A 2,000,000 USDT position cannot use more than 50x in the 2023 table: no level closer than 50x gives.
    sizes = SizeBuckets(np.array([2_000_000.0]), np.array([1.0]))
    got = project_levels(np.array([100_000.0]), np.array([1e6]), np.array([0.0]), PriceGrid("relative", 0.0001),
                         TABLES["BTCUSDT@2023-11-28"], LeverageMix.of((100.0,), (1.0,)), sizes)
    at_50x = tiered_liquidation_price(LONG, 20.0, 100_000.0, 2_000_000.0 / 50, TABLES["BTCUSDT@2023-11-28"]).price
    assert PriceGrid("relative", 0.0001).bin_id(float(at_50x)) == got.bin_id[0]
    assert got.collateral_usd[0] == pytest.approx(1e6 / 50)
