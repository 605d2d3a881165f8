"""Validation suite on a hand-made warehouse: the checks run with their partition, the monthly report grades
and stores its figures, ground truth separates a good from a bad estimate, and the backtest scores bars."""

from __future__ import annotations

import datetime as dt
import gc
import json
import math

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from liq_pipeline import partitions
from liq_pipeline.assets import validation as v
from liq_pipeline.model import scoring, variants
from liq_pipeline.model.grid import grid_for
from liq_pipeline.pipeline import workers
from liq_pipeline.validation import backtest as bt
from liq_pipeline.validation import seed, truth
from liq_pipeline.warehouse.schema import ensure_tables

SYMBOL = "BTCUSDT"
DAYS = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(10)]
MARK = 100_000.0
OI_USD = 1e9
GRID = grid_for(SYMBOL)


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    ensure_tables(con, table)
    con.register("_rows", frame)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    con.unregister("_rows")


def _funding(i: int) -> float:
    return 0.0001 + 0.0003 * np.sin(i)


def _levels(day, variant, long_prices, short_prices, notional=1e6):
    prices = list(long_prices) + list(short_prices)
    return pd.DataFrame({
        "symbol": SYMBOL, "day": day, "variant": variant, "as_of": dt.datetime.combine(day, dt.time(23, 59)),
        "side": ["long"] * len(long_prices) + ["short"] * len(short_prices),
        "bin_id": GRID.bin_id(np.array(prices)), "price": prices, "notional_usd": notional,
        "collateral_usd": notional / 10})


def build_warehouse(path, *, oi_error_day=None, wrong_long_day=None, hybrid_good=True, funding_flat=False,
                    hybrid_same=False):
    """10 days of BTCUSDT: signals, 4-variant distributions and heatmaps (ofi long share tracks funding),
    levels, raw inputs complete, funding, simulator truth matching one variant's levels (hybrid's unless
    `hybrid_good` is False; `hybrid_same` gives hybrid exactly volume_5050's levels)."""
    con = duckdb.connect(str(path))
    rng = np.random.default_rng(7)
    signals, dist, levels, funding, klines, oi, trades, heat = [], [], [], [], [], [], [], []
    true_long, true_short = [95_000.0, 97_000.0], [103_000.0]
    for i, day in enumerate(DAYS):
        f = 0.0001 if funding_flat else _funding(i)
        signals.append({"symbol": SYMBOL, "day": day, "as_of": dt.datetime.combine(day, dt.time(23, 59)),
                        "mark_price": MARK, "oi_usd": OI_USD, "oi_24h_ago_usd": OI_USD, "oi_delta": 0.0,
                        "funding_rate_8h": f, "flags": ""})
        for h in (0, 8, 16):
            t = dt.datetime.combine(day, dt.time(h))
            funding.append({"symbol": SYMBOL, "day": day, "calc_time": t, "funding_time": t, "funding_interval_hours": 8,
                            "last_funding_rate": f, "funding_rate_8h": f, "source": "test"})
        ratio = float(scoring.funding_implied_long_ratio(f)) + rng.normal(0, 0.005)
        for variant in ("volume_5050", "ofi", "funding", "hybrid"):
            share = {"volume_5050": 0.5, "ofi": ratio, "funding": 0.5, "hybrid": ratio}[variant]
            total = OI_USD * (1.02 if (variant == "funding" and day == oi_error_day) else 1.0)
            bins = GRID.bin_id(np.array([99_000.0, 100_000.0, 101_000.0]))
            dist.append(pd.DataFrame({
                "symbol": SYMBOL, "day": day, "variant": variant, "as_of": dt.datetime.combine(day, dt.time(23, 59)),
                "bin_id": bins, "price_mid": GRID.mid(bins), "long_usd": total * share / 3,
                "short_usd": total * (1 - share) / 3, "long_share_pre_funding": share}))
            good = (variant == "hybrid") == hybrid_good
            lp = true_long if good else [80_000.0, 85_000.0]
            sp = true_short if good else [120_000.0]
            if variant == "ofi":
                lp, sp = true_long, true_short
            if hybrid_same and variant in ("hybrid", "volume_5050"):
                lp, sp = [80_000.0, 85_000.0], [120_000.0]
            if day == wrong_long_day and variant == "hybrid":
                lp = lp + [100_500.0]  # a long level above the mark: should have been consumed
            levels.append(_levels(day, variant, lp, sp))
            for h in (2, 6, 10, 14, 18, 22):  # heatmap snapshots: long share = the variant's share
                t = dt.datetime.combine(day, dt.time(h))
                heat.append({"symbol": SYMBOL, "day": day, "variant": variant, "snapshot_time": t, "side": "long",
                             "bin_id": int(GRID.bin_id(95_000.0)), "price": 95_000.0, "notional_usd": 1e6 * share})
                heat.append({"symbol": SYMBOL, "day": day, "variant": variant, "snapshot_time": t, "side": "short",
                             "bin_id": int(GRID.bin_id(105_000.0)), "price": 105_000.0,
                             "notional_usd": 1e6 * (1 - share)})
        for interval, n in (("1h", 24),):
            times = [dt.datetime.combine(day, dt.time()) + dt.timedelta(hours=h) for h in range(n)]
            klines.append(pd.DataFrame({"symbol": SYMBOL, "day": day, "interval": interval, "open_time": times,
                                        "open": MARK, "high": MARK * 1.001, "low": MARK * 0.999, "close": MARK,
                                        "close_time": [t + dt.timedelta(minutes=59, seconds=59) for t in times],
                                        "source": "test"}))
        oi.append(pd.DataFrame({"symbol": SYMBOL, "day": day,
                                "create_time": [dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=5 * k) for k in range(288)],
                                "sum_open_interest": 1.0, "sum_open_interest_value": OI_USD, "is_stale": False,
                                "source": "test"}))
        # 100 aggregate trades with one id missing per day (99 % complete)
        ids = np.delete(np.arange(1000 * i, 1000 * i + 101), 50)
        trades.append(pd.DataFrame({"symbol": SYMBOL, "day": day, "agg_trade_id": ids, "price": MARK, "quantity": 0.01,
                                    "first_trade_id": ids, "last_trade_id": ids,
                                    "transact_time": dt.datetime.combine(day, dt.time(12)), "is_buyer_maker": False}))
    _insert(con, "model.position_signals", pd.DataFrame(signals))
    # The flow variant's unscaled book: its notional holds OI (oi_is_conserved checks it, unscaled).
    _insert(con, "model.flow_book", pd.DataFrame([
        {"symbol": SYMBOL, "day": day, "variant": variants.DEFAULT, "open_time": dt.datetime.combine(day, dt.time(1)),
         "side": side,
         "entry_price": MARK, "lev_bucket": 0, "leverage": 10.0, "size_usd": 5_000.0, "mmr": 0.004,
         "lp_open": MARK * (0.9 if side == "long" else 1.1), "funding_paid": 0.0, "weight": 1.0,
         "notional_usd": OI_USD / 2} for day in DAYS for side in ("long", "short")]))
    _insert(con, "model.position_distribution", pd.concat(dist))
    _insert(con, "model.liquidation_levels", pd.concat(levels))
    _insert(con, "model.liquidation_heatmap", pd.DataFrame(heat))
    _insert(con, "raw.funding_rates", pd.DataFrame(funding))
    _insert(con, "raw.klines", pd.concat(klines))
    _insert(con, "raw.mark_price_klines", pd.concat(klines))
    _insert(con, "raw.open_interest", pd.concat(oi))
    _insert(con, "raw.agg_trades", pd.concat(trades))
    # Truth: three 10x positions opened on day 1, still open; their liq prices match the good levels' bins.
    _insert(con, "truth.positions", pd.DataFrame({
        "symbol": SYMBOL, "day": DAYS[0], "position_id": [1, 2, 3], "side": ["long", "long", "short"],
        "open_time": dt.datetime(2026, 1, 1, 1), "close_time": pd.NaT, "entry_price": MARK,
        "quantity": [10.0, 10.0, 10.0], "leverage": [20.0, 33.0, 33.0], "isolated_margin_usd": 50_000.0,
        "liq_price": [true_long[0], true_long[1], true_short[0]], "bracket": 1, "outcome": "open"}))
    con.close()


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    monkeypatch.setenv("LIQ_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "w.duckdb"
    yield path
    gc.collect()


@dg.asset(partitions_def=partitions.symbol_day, name="position_distribution")
def _position_distribution_stub() -> dg.MaterializeResult:
    """Stand-in for the model asset: the rows are already in the test warehouse."""
    return dg.MaterializeResult()


@dg.asset(partitions_def=partitions.symbol_day, name="liquidation_levels")
def _liquidation_levels_stub() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@dg.asset(partitions_def=partitions.symbol_day, name="liquidation_heatmap")
def _liquidation_heatmap_stub() -> dg.MaterializeResult:
    return dg.MaterializeResult()


def _run_checks(path, day):
    result = dg.materialize(
        [_position_distribution_stub, _liquidation_levels_stub, _liquidation_heatmap_stub, v.oi_is_conserved, v.longs_liquidate_below_mark,
         v.shorts_liquidate_above_mark, v.long_ratio_tracks_funding],
        partition_key=partitions.key_for(SYMBOL, day), resources={"duckdb": DuckDBResource(database=str(path))},
        instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return {e.check_name.removesuffix(f"_{SYMBOL}"): e for e in result.get_asset_check_evaluations()}  # one check per symbol


def test_checks_pass_on_a_consistent_partition(warehouse):
    build_warehouse(warehouse)
    checks = _run_checks(warehouse, DAYS[-1])
    assert set(checks) == {"oi_is_conserved", "longs_liquidate_below_mark", "shorts_liquidate_above_mark",
                           "long_ratio_tracks_funding"}
    assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}
    funding = checks["long_ratio_tracks_funding"]
    assert funding.metadata["variant_tested"].value == "ofi"
    assert funding.metadata["verdict"].value == "pass"


def test_checks_see_their_own_partition(warehouse):
    build_warehouse(warehouse, oi_error_day=DAYS[4], wrong_long_day=DAYS[4])
    bad = _run_checks(warehouse, DAYS[4])
    assert not bad["oi_is_conserved"].passed
    assert bad["oi_is_conserved"].severity == dg.AssetCheckSeverity.ERROR
    assert bad["oi_is_conserved"].metadata["max_error_pct"].value == pytest.approx(2.0)
    assert not bad["longs_liquidate_below_mark"].passed and bad["shorts_liquidate_above_mark"].passed
    assert bad["longs_liquidate_below_mark"].metadata["wrong_levels"].value == 1
    # Each result names the symbol-day it covers and the failing ones, as the UI shows it.
    for name in ("oi_is_conserved", "longs_liquidate_below_mark"):
        assert bad[name].description.startswith(f"{SYMBOL} {DAYS[4]}: ")
        assert bad[name].description.endswith(f"failing: {SYMBOL} {DAYS[4]}")
    good = _run_checks(warehouse, DAYS[5])
    assert good["oi_is_conserved"].passed and good["longs_liquidate_below_mark"].passed


def test_constant_funding_is_inconclusive(warehouse):
    build_warehouse(warehouse, funding_flat=True)
    check = _run_checks(warehouse, DAYS[-1])["long_ratio_tracks_funding"]
    assert check.metadata["verdict"].value == "inconclusive"
    assert check.severity == dg.AssetCheckSeverity.WARN and check.description.startswith("inconclusive")


def test_data_quality_from_raw_tables(warehouse):
    build_warehouse(warehouse)
    with duckdb.connect(str(warehouse)) as con:
        dq = seed.data_quality(con, SYMBOL, DAYS[:5])
        missing_day = seed.data_quality(con, SYMBOL, DAYS[:5] + [dt.date(2026, 1, 20)])
    assert dq["klines"] == pytest.approx(1.0) and dq["open_interest"] == pytest.approx(1.0)
    assert dq["agg_trades"] == pytest.approx(100 / 101) and dq["score"] == pytest.approx(100 / 101)
    assert missing_day["klines"] == pytest.approx(5 / 6)


def test_ground_truth_separates_good_and_bad_estimates(warehouse):
    build_warehouse(warehouse, hybrid_good=True)
    with duckdb.connect(str(warehouse)) as con:
        rows = {r["variant"]: r for r in truth.ground_truth_accuracy(con, SYMBOL, DAYS[2])}
    assert rows["hybrid"]["overlap_levels"] == pytest.approx(1.0)
    assert rows["volume_5050"]["overlap_levels"] == pytest.approx(0.0)
    assert rows["hybrid"]["long_share_true"] == pytest.approx(2 / 3)
    # the long share is read on the surviving maps on both sides: 2 long levels and 1 short of equal notional
    assert rows["volume_5050"]["long_share_est"] == pytest.approx(2 / 3)
    assert rows["volume_5050"]["long_share_error"] == pytest.approx(0.0)
    # every overlap also against the oracle's ceiling, at 0.1 % and 1 % bins, and a bin-free distance
    hyb = rows["hybrid"]
    assert 0 < hyb["ceiling"] <= 1 and 0 < hyb["ceiling_1pct"] <= 1
    assert hyb["overlap_over_ceiling"] == pytest.approx(hyb["overlap_levels"] / hyb["ceiling"])
    assert hyb["distance_log"] == pytest.approx(0.0, abs=1e-3) and rows["volume_5050"]["distance_log"] > 0.1
    # simplified EP·(1 − 1/L + 0.004) against the hand-set truth liq prices
    expected = np.mean([abs(100_000 * (1 - 1 / 20 + 0.004) - 95_000) / 95_000,
                        abs(100_000 * (1 - 1 / 33 + 0.004) - 97_000) / 97_000,
                        abs(100_000 * (1 + 1 / 33 - 0.004) - 103_000) / 103_000])
    assert rows["hybrid"]["simplified_formula_mare"] == pytest.approx(expected)


def test_positions_closed_before_the_day_end_are_not_true_exposure(warehouse):
    build_warehouse(warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("UPDATE truth.positions SET close_time = TIMESTAMP '2026-01-03 12:00:00' WHERE position_id = 3")
        before = {r["variant"]: r for r in truth.ground_truth_accuracy(con, SYMBOL, DAYS[1])}
        after = {r["variant"]: r for r in truth.ground_truth_accuracy(con, SYMBOL, DAYS[2])}
    assert before["hybrid"]["long_share_true"] == pytest.approx(2 / 3)
    assert after["hybrid"]["long_share_true"] == pytest.approx(1.0)


def _report_run(warehouse):
    from liq_pipeline.assets.validation import hybrid_beats_volume_baseline, validation_report

    return dg.materialize([validation_report, hybrid_beats_volume_baseline], partition_key="2026-01-01",
                          resources={"duckdb": DuckDBResource(database=str(warehouse))},
                          instance=dg.DagsterInstance.ephemeral())


@pytest.mark.slow  # the monthly report through Dagster
def test_monthly_report_grades_writes_json_and_table(warehouse, tmp_path, capsys):
    build_warehouse(warehouse, hybrid_good=True)
    result = _report_run(warehouse)
    assert result.success
    report = json.loads((tmp_path / "data" / "reports" / "validation-2026-01.json").read_text())
    btc = report["symbols"][SYMBOL]
    assert btc["days"] == 10 and btc["funding_correlation_check"]["variant_tested"] == "ofi"
    assert btc["funding_correlation_check"]["verdict"] == "pass"
    # volume_5050's split is constant while funding moves: it does not track funding, r = 0 → fc 0 and F, graded
    # on the same test as every other variant (not "inconclusive")
    flat = btc["variants"]["volume_5050"]["grade"]
    assert not flat["inconclusive"] and flat["fc_score"] == 0 and flat["letter"] == "F"
    assert btc["variants"]["volume_5050"]["funding_tracking"]["verdict"] == "fail"
    ofi = btc["variants"]["ofi"]
    assert ofi["grade"]["letter"] == "A" and ofi["directional"]["accuracy"] == 1.0
    assert ofi["oi_conservation"]["mean_error_pct"] == pytest.approx(0.0, abs=1e-9)
    assert report["symbols"]["ETHUSDT"]["status"] == "no position distribution in this month"
    meta = result.asset_materializations_for_node("validation_report")[0].metadata
    assert "| ofi | **A**" in meta["report"].value
    # Grades as a table a person reads; a 10-day month says it is partial.
    assert f"| {SYMBOL} | ofi | A (" in meta["grades"].value and "10 of 31 days (partial month)" in meta["grades"].value
    assert f"### {SYMBOL}: 10 of 31 days (partial month)" in meta["report"].value
    # No markdown table in the report is wider than the UI's pop-up takes.
    widths = [line.count("|") - 1 for line in meta["report"].value.splitlines() if line.startswith("|")]
    assert widths and max(widths) <= 9
    assert "data:image/png;base64," in meta["report"].value
    assert btc["funding_correlation_check"]["intervals"][0]["settle_time"] == "2026-01-01T08:00:00"
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["hybrid_beats_volume_baseline"].passed
    # the yardstick table, as `liq validation-table --markdown` prints it for the README
    import argparse

    from liq_pipeline.cli import validation as validation_cli

    parser = argparse.ArgumentParser(prog="liq")
    validation_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["validation-table", "--markdown", "--reports", str(tmp_path / "data" / "reports")])
    capsys.readouterr()
    assert args.func(args) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| month | symbol | variant | grade | overlap / ceiling ±10 % (primary) | overlap 0.1 % |")
    hybrid = next(line for line in table if "| BTCUSDT | hybrid |" in line)
    assert "| 1.000 |" in hybrid and "| – |" in hybrid  # overlap 1 with the truth; no backtest without liquidations
    with duckdb.connect(str(warehouse)) as con:
        letter_rows = con.execute("""SELECT variant, verdict FROM model.validation_results
                                     WHERE test = 'grade' AND metric = 'total' ORDER BY variant""").fetchall()
    assert dict(letter_rows)["ofi"] == "A"
    # re-running replaces the month's rows instead of adding to them
    n = duckdb.connect(str(warehouse)).execute("SELECT count(*) FROM model.validation_results").fetchone()[0]
    gc.collect()
    assert _report_run(warehouse).success
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute("SELECT count(*) FROM model.validation_results").fetchone()[0] == n


@pytest.mark.slow  # the monthly report through Dagster
def test_hybrid_worse_than_baseline_fails_the_check(warehouse):
    build_warehouse(warehouse, hybrid_good=False)
    result = _report_run(warehouse)
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "hybrid_beats_volume_baseline")
    assert not check.passed and "not shown better" in check.description


@pytest.mark.slow  # the monthly report through Dagster
def test_hybrid_equal_to_volume_5050_fails_the_check(warehouse):
    build_warehouse(warehouse, hybrid_same=True)
    result = _report_run(warehouse)
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "hybrid_beats_volume_baseline")
    assert not check.passed
    (low, high), = check.metadata["interval_90pct"].value.values()
    assert low == pytest.approx(0.0) and high == pytest.approx(0.0)


def _backtest_warehouse(path):
    """One day of 1h mark bars; a snapshot at 00:00 with a long level at 95k and a short level at 105k; the
    mark dips through 95k in bar 3 and spikes through 105k in bar 7, where the truth liquidates."""
    con = duckdb.connect(str(path))
    day = dt.date(2026, 1, 2)
    t0 = dt.datetime.combine(day, dt.time())
    highs, lows = np.full(24, 100_400.0), np.full(24, 99_600.0)
    lows[3], highs[7] = 94_900.0, 105_100.0
    _insert(con, "raw.mark_price_klines", pd.DataFrame({
        "symbol": SYMBOL, "day": day, "interval": "1h", "open_time": [t0 + dt.timedelta(hours=h) for h in range(24)],
        "open": MARK, "high": highs, "low": lows, "close": MARK,
        "close_time": [t0 + dt.timedelta(hours=h, minutes=59) for h in range(24)], "source": "test"}))
    snap = pd.DataFrame({"symbol": SYMBOL, "day": day, "variant": "hybrid", "snapshot_time": t0 + dt.timedelta(hours=1),
                         "side": ["long", "short", "long"], "bin_id": GRID.bin_id(np.array([95_000.0, 105_000.0, 60_000.0])),
                         "price": [95_000.0, 105_000.0, 60_000.0], "notional_usd": [1e6, 2e6, 5e6]})
    _insert(con, "model.liquidation_heatmap", snap)
    _insert(con, "truth.liquidations", pd.DataFrame({
        "symbol": SYMBOL, "day": day, "position_id": [1, 2], "liq_time": [t0 + dt.timedelta(hours=3, minutes=10),
                                                                         t0 + dt.timedelta(hours=7, minutes=5)],
        "side": ["long", "short"], "price": [95_000.0, 105_000.0], "quantity": [5.0, 4.0],
        "notional_usd": [475_000.0, 420_000.0]}))
    return con


def test_backtest_scores_bars_from_the_snapshot_at_bar_start(tmp_path):
    con = _backtest_warehouse(tmp_path / "b.duckdb")
    res = bt.backtest(con, SYMBOL, dt.date(2026, 1, 2), dt.date(2026, 1, 2), "hybrid", top_k=2)
    con.close()
    m = res.metrics
    # the snapshot is at 01:00, so the 00:00 bar has no prediction
    assert m["bars"] == 24 and m["bars_scored"] == 23 and m["bars_without_snapshot"] == 1
    assert m["realized_source"] == "truth" and m["realized_long_usd"] == pytest.approx(475_000.0)
    bar3 = res.bars.set_index("bar_start").loc[pd.Timestamp("2026-01-02 03:00")]
    assert bar3["pred_long"] == pytest.approx(1e6) and bar3["pred_short"] == 0
    assert m["top_k_model"]["precision"] == 1.0 and m["top_k_model"]["false_positives"] == 0
    assert m["spearman"]["r"] > 0.5
    # with K = 4 only two cells carry a prediction: no more flags, no invented false positives
    con = duckdb.connect(str(tmp_path / "b.duckdb"))
    wide = bt.backtest(con, SYMBOL, dt.date(2026, 1, 2), dt.date(2026, 1, 2), "hybrid", top_k=4).metrics
    con.close()
    assert wide["top_k_model"]["true_positives"] == 2
    # the leverage-only baseline (all notional at the mark, leverage mix) flags the same two bars here
    assert wide["baselines"]["leverage_only"]["top_k"]["recall"] == pytest.approx(1.0)
    # side excursion (open − low for longs, high − open for shorts) ranks the two liquidating cells first too
    assert wide["baselines"]["side_excursion"]["top_k"]["notional_recall"] == pytest.approx(1.0)
    assert wide["price_series"] == "mark" and wide["candle_minutes"] == [60]


def test_backtest_events_source_dedupes_across_sources(tmp_path):
    con = _backtest_warehouse(tmp_path / "b.duckdb")
    con.execute("DELETE FROM truth.liquidations")
    row = {"symbol": SYMBOL, "day": dt.date(2026, 1, 2), "event_time": dt.datetime(2026, 1, 2, 3, 10),
           "trade_time": dt.datetime(2026, 1, 2, 3, 10), "side": "long", "price": 95_000.0, "avg_price": 95_000.0,
           "quantity": 1.0, "notional_usd": 95_000.0}
    _insert(con, "raw.realized_liquidations", pd.DataFrame([row | {"source": "forceOrder_ws"}, row | {"source": "file:x"}]))
    source, bars = bt.realized_per_bar(con, SYMBOL, dt.datetime(2026, 1, 2), dt.datetime(2026, 1, 3), 60)
    con.close()
    assert source == "events" and bars["real_long"].sum() == pytest.approx(95_000.0)


def test_backtest_rejects_bad_bar_length(tmp_path):
    with duckdb.connect(str(tmp_path / "x.duckdb")) as con, pytest.raises(ValueError, match="divide a day"):
        bt.backtest(con, SYMBOL, dt.date(2026, 1, 2), dt.date(2026, 1, 2), bar_minutes=7)


def test_realized_liquidations_asset_loads_the_drop_folder(warehouse, tmp_path):
    folder = tmp_path / "data" / "liquidations"
    folder.mkdir(parents=True)
    (folder / "bars.csv").write_text("timestamp,long_usd,short_usd,symbol\n2026-01-02 03:00:00,475000,0,BTCUSDT\n"
                                     "2026-01-02 04:00:00,0,0,BTCUSDT\n")
    result = dg.materialize([v.realized_liquidations], resources={"duckdb": DuckDBResource(database=str(warehouse))},
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert result.asset_materializations_for_node("realized_liquidations")[0].metadata["rows"].value == 2
    (folder / "broken.csv").write_text("nonsense\n")
    gc.collect()
    failed = dg.materialize([v.realized_liquidations], resources={"duckdb": DuckDBResource(database=str(warehouse))},
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not failed.success
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute("SELECT count(*) FROM raw.realized_liquidation_bars").fetchone()[0] == 2


def test_backtest_cli_prints_a_table(tmp_path, capsys):
    import argparse

    from liq_pipeline.cli import validation as validation_cli

    _backtest_warehouse(tmp_path / "b.duckdb").close()
    parser = argparse.ArgumentParser(prog="liq")
    validation_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["backtest", SYMBOL, "--start", "2026-01-02", "--end", "2026-01-02", "--variant", "hybrid",
                              "--top-k", "2", "--json", "--warehouse", str(tmp_path / "b.duckdb")])
    assert args.func(args) == 0
    metrics = json.loads(capsys.readouterr().out)["hybrid"]
    assert metrics["top_k_model"]["precision"] == 1.0 and metrics["realized_source"] == "truth"
    args = parser.parse_args(["backtest", SYMBOL, "--start", "2026-01-02", "--end", "2026-01-02", "--variant", "hybrid",
                              "--warehouse", str(tmp_path / "b.duckdb")])
    assert args.func(args) == 0
    text = capsys.readouterr().out.splitlines()
    assert "60-minute bars from 60-minute mark-price candles, realized: truth" in text[0]
    assert "strongest baseline" in text[2] and text[3].startswith("hybrid") and "scored" in text[3]


def test_check_launched_without_a_partition_evaluates_the_latest_day(warehouse):
    build_warehouse(warehouse, oi_error_day=DAYS[-1])
    result = dg.materialize([_position_distribution_stub, v.oi_is_conserved],
                            selection=dg.AssetSelection.checks(v.oi_is_conserved),
                            resources={"duckdb": DuckDBResource(database=str(warehouse))},
                            instance=dg.DagsterInstance.ephemeral())
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and "latest materialized day" in check.metadata["note"].value
    assert str(DAYS[-1]) in check.metadata["per_variant"].value


def _backtest_cli(path, *argv):
    import argparse

    from liq_pipeline.cli import validation as validation_cli

    parser = argparse.ArgumentParser(prog="liq")
    validation_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["backtest", *argv, "--warehouse", str(path)])
    return args.func(args)


@pytest.mark.parametrize("argv, message", [
    (["FOOUSDT", "--start", "2026-01-02", "--end", "2026-01-02"], "unknown symbol FOOUSDT"),
    ([SYMBOL, "--start", "2026-03-01", "--end", "2026-03-02", "--variant", "hybrid"], "no hybrid heatmap of BTCUSDT"),
    ([SYMBOL, "--start", "2026-01-02", "--end", "2026-01-02", "--variant", "ofi"], "no ofi heatmap"),
    ([SYMBOL, "--start", "2026-01-02", "--end", "2026-01-02", "--variant", "hybrid", "--source", "events"],
     "no realized liquidations from source events"),
    ([SYMBOL, "--start", "2026-01-02", "--end", "2026-01-02", "--variant", "hybrid", "--bar-minutes", "30"],
     "30-minute bars cannot be cut from the finest price candles available (60-minute"),
])
def test_backtest_cli_exits_2_with_one_line_when_nothing_can_be_scored(tmp_path, capsys, argv, message):
    _backtest_warehouse(tmp_path / "b.duckdb").close()
    assert _backtest_cli(tmp_path / "b.duckdb", *argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and captured.err.count("\n") == 1


def test_oracle_map_spreads_unknown_leverage_over_the_mix_that_survived():
    from liq_pipeline.model import margin

    table = margin.table_for(SYMBOL, DAYS[0]).table
    positions = pd.DataFrame({"side": ["long", "short"], "entry_price": [100_000.0, 100_000.0],
                              "notional_usd": [10_000.0, 10_000.0]})
    lev, w = np.array([10.0, 20.0, 50.0]), np.array([0.5, 0.3, 0.2])
    # the mark fell to 93,000 after the long opened (20x and 50x would have been liquidated) and never rose
    oracle = truth.oracle_map(positions, lev, w, table, np.array([93_000.0, 99_000.0]), np.array([100_500.0, 100_500.0]))
    long_ = oracle.side == "long"
    assert oracle.notional_usd[long_].sum() == pytest.approx(10_000.0) and long_.sum() == 1
    expected = margin.isolated_liquidation_price_at_leverage(margin.LONG, 10_000.0, 100_000.0, 10.0, table).price
    assert oracle.price[long_][0] == pytest.approx(float(expected))
    # the short survived at every leverage: spread by the mix weights
    assert np.sort(oracle.notional_usd[~long_]) == pytest.approx([2_000.0, 3_000.0, 5_000.0])
    dead = truth.oracle_map(positions[:1], lev, w, table, np.array([50_000.0]), np.array([100_500.0]))
    assert dead.unplaced_positions == 1 and dead.notional_usd.size == 0


def test_backtest_without_mark_candles_prices_bars_from_last_price_klines_and_says_so(tmp_path):
    con = _backtest_warehouse(tmp_path / "b.duckdb")
    ensure_tables(con, "raw.klines")
    con.execute("INSERT INTO raw.klines BY NAME SELECT * FROM raw.mark_price_klines")
    con.execute("DELETE FROM raw.mark_price_klines")
    m = bt.backtest(con, SYMBOL, dt.date(2026, 1, 2), dt.date(2026, 1, 2), "hybrid", top_k=2).metrics
    con.close()
    assert m["status"] == "scored" and m["price_series"] == "last" and "23 bars priced from last-price" in m["price_note"]


def test_hybrid_comparison_on_realized_data_uses_daily_partial_spearman():
    from liq_pipeline.validation.report import hybrid_comparison

    def variants(hybrid_r, base_r, n=6):
        daily = lambda r: [{"day": f"2026-01-0{i + 1}", "partial_spearman": r + 0.01 * (i % 2)} for i in range(n)]  # noqa: E731
        return {"hybrid": {"backtest": {"daily": daily(hybrid_r)}}, "volume_5050": {"backtest": {"daily": daily(base_r)}}}

    better = hybrid_comparison(variants(0.30, 0.20), [])
    assert better["measure"] == "backtest.partial_spearman" and better["verdict"] == "pass"
    assert better["difference"]["low"] == pytest.approx(0.10)
    assert hybrid_comparison(variants(0.25, 0.25), [])["verdict"] == "fail"
    assert hybrid_comparison(variants(0.3, 0.2, n=2), [])["verdict"] == "inconclusive"
    assert hybrid_comparison({}, [])["verdict"] == "inconclusive"


def _same_rows(a: list[dict], b: list[dict]) -> bool:
    """Equal row by row and key by key, NaN equal to NaN (no tolerance: the same arithmetic)."""
    def eq(x, y):
        return (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) or x == y

    return len(a) == len(b) and all(ra.keys() == rb.keys() and all(eq(ra[k], rb[k]) for k in ra)
                                    for ra, rb in zip(a, b, strict=True))


def test_ground_truth_days_equal_the_daily_rows_in_process_and_in_workers(warehouse):
    """truth.ground_truth_days: the rows of ground_truth_accuracy day after day, the same whether the oracle
    maps are computed here or in worker processes (pipeline/workers.py, as `make demo` runs it)."""
    path = warehouse
    build_warehouse(path, hybrid_good=True)
    days = DAYS[:4]
    with duckdb.connect(str(path)) as con:
        daily = [row for d in days for row in truth.ground_truth_accuracy(con, SYMBOL, d)]
        here = truth.ground_truth_days(con, SYMBOL, days)
        with workers.running_in(2):
            beside = truth.ground_truth_days(con, SYMBOL, days)
    assert len({r["day"] for r in daily}) >= 2 and {r["day"] for r in daily} <= {d.isoformat() for d in days}
    assert "ceiling" in daily[0] and daily[0]["ceiling"] > 0
    assert _same_rows(daily, here) and _same_rows(daily, beside)
