"""The model assets over hand-made raw rows in a temporary DuckDB: every table filled, the invariants of
the model (OI conservation, direction, no lookahead) hold on the stored rows, and re-runs are idempotent."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pytest
from dagster_duckdb import DuckDBResource

from liq_pipeline import partitions
from liq_pipeline.assets import flow, model
from liq_pipeline.config import MODEL
from liq_pipeline.model.variants import NAMES as VARIANTS
from liq_pipeline.resources import MarketSource
from liq_pipeline.warehouse.schema import ensure_tables

SYMBOL = "BTCUSDT"
DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
MODEL_ASSETS = [model.volume_profile_daily, model.volume_profile_baseline, model.ofi_bins, flow.flow_book,
                model.position_distribution, model.liquidation_levels]
#: OI (USDT) at 00:00 of DAYS[0]; it grows 0.1 % per hour, so ΔOI over 24 h is +2.4 %.
OI0 = 8.0e9


def fill_raw(con, days=DAYS, with_trades=True, mark=True) -> None:
    """Hand-made raw rows: a price wave around 100,000 (one trade every 30 s), buyer-initiated on the way
    up and seller-initiated on the way down; 1m mark and trade klines of the same path; OI every 5 min;
    funding 0.0003 every 8 h."""
    ensure_tables(con)
    for day in days:
        start = dt.datetime.combine(day, dt.time())
        d0 = (day - days[0]).days

        def path(i: str, d0: int = d0) -> str:  # price at trade index i (30 s steps), continuous across days
            return f"100000 * (1 + 0.02 * sin(({i} + {d0 * 2880}) / 300.0))"

        def slope(i: str, d0: int = d0) -> str:
            return f"cos(({i} + {d0 * 2880}) / 300.0)"

        if with_trades:
            con.execute(f"""
                INSERT INTO raw.agg_trades BY NAME
                SELECT '{SYMBOL}' AS symbol, DATE '{day}' AS day, {d0} * 10000 + i AS agg_trade_id,
                       {path('i')} AS price, 0.01 + (i % 7) * 0.05 AS quantity, i AS first_trade_id, i AS last_trade_id,
                       TIMESTAMP '{start}' + to_milliseconds(i * 30000) AS transact_time,
                       {slope('i')} < 0 AS is_buyer_maker
                FROM range(2880) t(i)""")
        for table in ("raw.klines", "raw.mark_price_klines") if mark else ("raw.klines",):
            con.execute(f"""
                INSERT INTO {table} BY NAME
                SELECT '{SYMBOL}' AS symbol, DATE '{day}' AS day, '1m' AS interval,
                       TIMESTAMP '{start}' + to_minutes(m) AS open_time,
                       p AS open, p * 1.0005 AS high, p * 0.9995 AS low, p AS close, 2.0 AS volume,
                       TIMESTAMP '{start}' + to_milliseconds(m * 60000 + 59999) AS close_time,
                       2.0 * p AS quote_volume, 4 AS trade_count,
                       CASE WHEN s > 0 THEN 1.5 ELSE 0.5 END AS taker_buy_volume,
                       CASE WHEN s > 0 THEN 1.5 ELSE 0.5 END * p AS taker_buy_quote_volume, 'test' AS source
                FROM (SELECT m, {path('m * 2')} AS p, {slope('m * 2')} AS s
                      FROM range(1440) t(m))""")
        con.execute(f"""
            INSERT INTO raw.open_interest BY NAME
            SELECT '{SYMBOL}' AS symbol, DATE '{day}' AS day, TIMESTAMP '{start}' + to_minutes(k * 5) AS create_time,
                   {OI0} / 1e5 * pow(1.001, ({d0} * 288 + k) / 12.0) AS sum_open_interest,
                   {OI0} * pow(1.001, ({d0} * 288 + k) / 12.0) AS sum_open_interest_value,
                   NULL AS count_toptrader_long_short_ratio, NULL AS sum_toptrader_long_short_ratio,
                   NULL AS count_long_short_ratio, NULL AS sum_taker_long_short_vol_ratio,
                   false AS is_stale, 'test' AS source
            FROM range(288) t(k)""")
        con.execute(f"""
            INSERT INTO raw.funding_rates BY NAME
            SELECT '{SYMBOL}' AS symbol, DATE '{day}' AS day, TIMESTAMP '{start}' + to_hours(h * 8) AS calc_time,
                   TIMESTAMP '{start}' + to_hours(h * 8) AS funding_time, 8 AS funding_interval_hours,
                   0.0003 AS last_funding_rate, 0.0003 AS funding_rate_8h, 'test' AS source
            FROM range(3) t(h)""")


@pytest.fixture
def duck(tmp_path):
    res = DuckDBResource(database=str(tmp_path / "w.duckdb"))
    with res.get_connection() as con:
        fill_raw(con)
    return res


def run(duck, day, assets=MODEL_ASSETS, market=None):
    return dg.materialize(assets, resources={"duckdb": duck, "market": market or MarketSource(sim_dir="unused")},
                          partition_key=partitions.key_for(SYMBOL, day), instance=dg.DagsterInstance.ephemeral())


def query(duck, sql, params=()):
    with duck.get_connection() as con:
        return con.execute(sql, list(params)).df()


def test_baseline_depends_on_the_window_of_daily_profiles_of_the_same_symbol():
    defs = dg.Definitions(assets=MODEL_ASSETS, resources={"duckdb": DuckDBResource(database=":memory:"),
                                                         "market": MarketSource()})
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    child = partitions.key_for(SYMBOL, dt.date(2026, 3, 1))
    parents = graph.get_parent_partition_keys_for_child(
        child, dg.AssetKey("volume_profile_daily"), dg.AssetKey("volume_profile_baseline")).partitions_subset
    keys = sorted(parents.get_partition_keys())
    assert len(keys) == MODEL.window_days
    assert {k.keys_by_dimension["symbol"] for k in keys} == {SYMBOL}
    assert min(k.keys_by_dimension["date"] for k in keys) == "2026-01-31"
    assert max(k.keys_by_dimension["date"] for k in keys) == "2026-03-01"


@pytest.mark.slow  # three days through Dagster
def test_materializing_three_days_fills_every_model_table_consistently(duck):
    for day in DAYS[:2]:
        assert run(duck, day, [model.volume_profile_daily]).success
    result = run(duck, DAYS[2])
    assert result.success
    day = DAYS[2]
    daily = query(duck, "SELECT * FROM model.volume_profile_daily WHERE day = ?", [day])
    assert (daily["source"] == "aggTrades").all() and daily["split_known"].all()
    trades = query(duck, "SELECT sum(price * quantity) AS n, count(*) AS c FROM raw.agg_trades WHERE day = ?", [day])
    assert daily["notional_usd"].sum() == pytest.approx(trades["n"][0], rel=1e-12)
    assert daily["trade_count"].sum() == trades["c"][0]

    base = query(duck, "SELECT * FROM model.volume_profile_baseline WHERE day = ?", [day])
    all_daily = query(duck, "SELECT sum(notional_usd) AS n FROM model.volume_profile_daily")
    assert base["notional_usd"].sum() == pytest.approx(all_daily["n"][0], rel=1e-12)
    assert (base["days_in_window"] == 3).all()

    signals = query(duck, "SELECT * FROM model.position_signals WHERE day = ?", [day])
    assert len(signals) == 1
    # Last OI sample strictly before D+1 00:00 is 23:55 of D (no lookahead into D+1, which has no rows anyway).
    expected_oi = OI0 * 1.001 ** ((2 * 288 + 287) / 12.0)
    assert signals["oi_usd"][0] == pytest.approx(expected_oi, rel=1e-12)
    assert signals["funding_rate_8h"][0] == pytest.approx(0.0003)

    dist = query(duck, "SELECT variant, sum(long_usd + short_usd) AS total, sum(long_usd) AS longs "
                       "FROM model.position_distribution WHERE day = ? GROUP BY variant", [day])
    assert set(dist["variant"]) == set(VARIANTS)
    assert np.allclose(dist["total"], expected_oi, rtol=1e-9)
    share = dict(zip(dist["variant"], dist["longs"] / dist["total"], strict=True))
    # Each variant's distribution is its end book: opens split by its rule (volume_5050 50/50; funding 0.0003 >
    # 0.0001 tilts them towards longs, p = 1.2/2 = 0.6), then the mark path consumed some of either side.
    assert share["volume_5050"] == pytest.approx(0.5, abs=0.05)
    assert share["funding"] > share["volume_5050"] + 0.05

    levels = query(duck, "SELECT * FROM model.liquidation_levels WHERE day = ?", [day])
    mark = signals["mark_price"][0]
    assert set(levels["variant"]) == set(VARIANTS)
    assert (levels.loc[levels["side"] == "long", "price"] < mark).all()
    assert (levels.loc[levels["side"] == "short", "price"] > mark).all()
    assert (levels["collateral_usd"] < levels["notional_usd"]).all()
    # Levels at risk never exceed the distribution they come from.
    at_risk = levels.groupby("variant")["notional_usd"].sum()
    assert (at_risk <= expected_oi * (1 + 1e-9)).all() and (at_risk > 0).all()

    meta = result.asset_materializations_for_node("liquidation_levels")[0].metadata
    assert "data:image/png;base64," in meta["liquidation_map"].value
    assert all(v in meta["levels"].value for v in VARIANTS)


@pytest.mark.slow  # materializes the model twice
def test_rematerializing_gives_identical_rows(duck):
    for day in DAYS:
        assert run(duck, day, [model.volume_profile_daily]).success
    assert run(duck, DAYS[2], MODEL_ASSETS[1:]).success
    tables = ["model.volume_profile_baseline", "model.ofi_bins", "model.position_distribution",
              "model.liquidation_levels"]
    before = {t: query(duck, f"SELECT * FROM {t} ORDER BY ALL") for t in tables}
    assert run(duck, DAYS[2], MODEL_ASSETS[1:]).success
    for t in tables:
        after = query(duck, f"SELECT * FROM {t} ORDER BY ALL")
        assert after.equals(before[t]), t


@pytest.mark.slow  # materializes the model twice
def test_klines_source_on_purpose_and_as_fallback(tmp_path):
    duck = DuckDBResource(database=str(tmp_path / "k.duckdb"))
    with duck.get_connection() as con:
        fill_raw(con, days=DAYS[:1], with_trades=False)
    result = run(duck, DAYS[0], MODEL_ASSETS)
    assert result.success
    daily = query(duck, "SELECT * FROM model.volume_profile_daily")
    assert (daily["source"] == "klines_1m").all()
    meta = result.asset_materializations_for_node("volume_profile_daily")[0].metadata
    assert "fallback: no aggTrades" in meta["partitions"].value
    levels = query(duck, "SELECT count(*) AS n FROM model.liquidation_levels")
    assert levels["n"][0] > 0

    with duck.get_connection() as con:
        fill_raw(con, days=DAYS[1:2])
    chosen = run(duck, DAYS[1], [model.volume_profile_daily], market=MarketSource(profile_source="klines"))
    assert chosen.success
    assert set(query(duck, "SELECT source FROM model.volume_profile_daily WHERE day = ?", [DAYS[1]])["source"]) \
        == {"klines_1m"}


def test_missing_raw_data_fails_with_a_clear_message(tmp_path):
    duck = DuckDBResource(database=str(tmp_path / "e.duckdb"))
    with pytest.raises(dg.Failure, match="neither raw.agg_trades nor raw.klines"):
        list(model.volume_profile_daily(dg.build_asset_context(partition_key=partitions.key_for(SYMBOL, DAYS[0])),
                                        duckdb=duck, market=MarketSource()))  # a generator (event_order.py)


@pytest.mark.slow  # materializes the model
def test_missing_funding_and_oi_degrade_with_flags(tmp_path):
    duck = DuckDBResource(database=str(tmp_path / "d.duckdb"))
    with duck.get_connection() as con:
        fill_raw(con, days=DAYS[:1])
        con.execute("DELETE FROM raw.funding_rates")
        con.execute("DELETE FROM raw.open_interest WHERE create_time >= TIMESTAMP '2026-01-01 12:00:00'")
    assert run(duck, DAYS[0]).success
    flags = query(duck, "SELECT flags FROM model.position_signals")["flags"][0]
    assert "funding_missing" in flags and "oi_missing" in flags
    dist = query(duck, "SELECT variant, sum(long_usd) AS l, sum(short_usd) AS s FROM model.position_distribution "
                       "GROUP BY variant ORDER BY variant")
    by = dist.set_index("variant")
    # Without funding, the funding variant is the 50/50 baseline.
    assert by.loc["funding", "l"] == pytest.approx(by.loc["volume_5050", "l"])
