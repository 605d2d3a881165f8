"""The chain on data shaped like what users have (issue 16.4): a kline-only mirror built from the simulator
(no aggTrades, count = 0, taker split exactly half, 15m/1h klines, 1h mark klines, hourly metrics with one
hour missing, clipped monthly funding) goes raw → model → heatmap → backtest through `liq score-real`, in
its own process and data directory, as a user would run it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from liq_pipeline.apps import scorecard
from liq_pipeline.sim import SimConfig, simulate
from liq_pipeline_tests.support.kline_only_mirror import write_kline_only_mirror

SYMBOL = "BTCUSDT"
FIRST = dt.date(2026, 1, 1)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(4)]
WARM_UP = 2
SCORED = DAYS[WARM_UP:]
MISSING_OI_HOUR = dt.datetime(2026, 1, 3, 5)


pytestmark = pytest.mark.slow  # simulates a market and runs `liq score-real` in its own process


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kline_only")
    simulate(SimConfig(symbols=(SYMBOL,), start=FIRST, days=len(DAYS), seed=11, out_dir=tmp / "sim",
                       trades_per_day=3_000, positions_per_day=400, workers=1))
    mirror = tmp / "mirror"
    rows = write_kline_only_mirror(tmp / "sim", mirror, SYMBOL, DAYS, MISSING_OI_HOUR,
                                   tmp / "sim" / "truth" / "liquidations" / f"{SYMBOL}.parquet")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQ_")}
    proc = subprocess.run([sys.executable, "-m", "liq_pipeline.cli", "score-real", "--mirror", str(mirror),
                           "--data-dir", str(tmp / "data"), "--warm-up-days", str(WARM_UP)],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    card = json.loads(next((tmp / "data" / "reports").glob("scorecard-*.json")).read_text())
    return {"tmp": tmp, "rows": rows, "out": proc.stdout, "card": card,
            "db": tmp / "data" / "warehouse" / "liq.duckdb"}


def _query(scored, sql, params=None):
    with duckdb.connect(str(scored["db"]), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_mirror_has_the_shape_of_third_party_data(scored):
    mirror = scored["tmp"] / "mirror" / "data" / "futures" / "um"
    assert not (mirror / "daily" / "aggTrades").exists()
    assert scored["rows"]["metrics"] == 24 * len(DAYS) - 1 and scored["rows"]["mark_1h"] == 24 * len(DAYS)
    assert _query(scored, "SELECT DISTINCT interval, trade_count, taker_buy_volume * 2 = volume FROM raw.klines") \
        == [("15m", 0, True)]
    assert _query(scored, "SELECT count(*) FROM raw.open_interest WHERE day = ?", [MISSING_OI_HOUR.date()]) == [(23,)]


def test_model_runs_on_klines_with_the_size_prior_flagged(scored):
    assert _query(scored, "SELECT DISTINCT source, split_known FROM model.volume_profile_daily") == [("klines_15m", False)]
    card = scored["card"]
    prior = [kind for kind in card["flags"] if kind.startswith("size_prior:")]  # the heatmap's flag
    assert len(prior) == 1 and card["flags"][prior[0]] == len(SCORED)
    # liquidation_levels also runs on the day before the first scored one (the heatmap starts from it)
    assert card["flags"]["liquidation_levels " + prior[0]] == len(SCORED) + 1
    assert "klines has a trade count (count = N, as in third-party klines)" in prior[0]  # numbers as N
    assert card["learned"]["position_sizes"] == "size prior (klines carry no trade counts)"
    for table in ("model.liquidation_levels", "model.liquidation_heatmap", "model.liquidation_zones"):
        days = {r[0] for r in _query(scored, f"SELECT DISTINCT day FROM {table}")}
        assert set(SCORED) <= days, table


def test_backtest_scores_every_variant_against_the_imported_bars(scored):
    card = scored["card"]
    assert card["realized_rows"] == 24 * len(SCORED)
    truth = pd.read_parquet(scored["tmp"] / "sim" / "truth" / "liquidations" / f"{SYMBOL}.parquet")
    t = truth["liq_time"].astype("datetime64[ms]")
    # the first bar of the first scored day precedes the day's first snapshot (00:15): not scored
    in_scored = (t >= pd.Timestamp(SCORED[0]) + pd.Timedelta(hours=1)) & (t < pd.Timestamp(SCORED[-1] + dt.timedelta(days=1)))
    for variant, s in card["variants"].items():
        assert s["status"] == "scored", variant
        assert s["bars_scored"] == 24 * len(SCORED) - 1
        assert s["realized_usd"] == pytest.approx(truth.loc[in_scored, "notional_usd"].sum(), rel=1e-9)
        assert -1 <= s["spearman_map"] <= 1 and 0 <= s["top10_notional_recall_map"] <= 1
        for name in ("spearman_bar_range", "spearman_side_excursion", "partial_spearman"):
            assert -1 <= s[name] <= 1, (variant, name)
        assert 0 <= s["realized_share_where_map_zero"] <= 1
    assert set(card["targets"]) == set(scorecard.TARGETS)
    assert "imported realized_liquidations_1h.csv: 96 bars" in scored["out"]
