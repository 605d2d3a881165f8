"""A short slice of the real BTCUSDT development window (../shared/data/real-btcusdt-2025-12-05_2026-02-20,
or $LIQ_REAL_DATA_DIR), read in place, end to end through the kline-only path and the backtest with
`liq score-real`: three warm-up days, then three scored days that include the hour of missing OI
(2025-12-20 01:00). Skipped, with the reason, when the folder is not there."""

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

REAL = scorecard.real_data_dir()
FIRST, LAST = dt.date(2025, 12, 16), dt.date(2025, 12, 21)
WARM_UP = 3
SCORED_FROM = FIRST + dt.timedelta(days=WARM_UP)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (REAL / "data" / "futures" / "um").is_dir() or not (REAL / "realized_liquidations_1h.csv").is_file(),
    reason=f"real-data window not found at {REAL} (set {scorecard.REAL_DATA_ENV} to its folder)")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = tmp_path_factory.mktemp("real") / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQ_")}
    proc = subprocess.run([sys.executable, "-m", "liq_pipeline.cli", "score-real", "--mirror", str(REAL),
                           "--start", FIRST.isoformat(), "--end", LAST.isoformat(), "--warm-up-days", str(WARM_UP),
                           "--data-dir", str(data)], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    card = json.loads((data / "reports" / f"scorecard-BTCUSDT-{SCORED_FROM}-{LAST}.json").read_text())
    return {"card": card, "out": proc.stdout, "db": data / "warehouse" / "liq.duckdb"}


def test_the_slice_goes_through_the_kline_only_path(run):
    with duckdb.connect(str(run["db"]), read_only=True) as con:
        assert con.execute("SELECT DISTINCT interval, trade_count FROM raw.klines").fetchall() == [("15m", 0)]
        assert con.execute("SELECT count(*) FROM raw.open_interest WHERE day = DATE '2025-12-20'").fetchone() == (23,)
        assert con.execute("SELECT DISTINCT source FROM model.volume_profile_daily").fetchall() == [("klines_15m",)]
        days = {r[0] for r in con.execute("SELECT DISTINCT day FROM model.liquidation_heatmap").fetchall()}
    assert days == {SCORED_FROM + dt.timedelta(days=i) for i in range((LAST - SCORED_FROM).days + 1)}
    assert run["card"]["learned"]["position_sizes"] == "size prior (klines carry no trade counts)"


def test_the_backtest_scores_the_real_liquidations_of_the_slice(run):
    card = run["card"]
    days = (LAST - SCORED_FROM).days + 1
    assert card["realized_rows"] == 24 * days
    bars = pd.read_csv(REAL / "realized_liquidations_1h.csv", parse_dates=["bar_start_utc"])
    start = pd.Timestamp(SCORED_FROM, tz="UTC") + pd.Timedelta(hours=1)  # bar 00:00 precedes the first snapshot
    end = pd.Timestamp(LAST + dt.timedelta(days=1), tz="UTC")
    inside = bars[(bars["bar_start_utc"] >= start) & (bars["bar_start_utc"] < end)]
    for variant, s in card["variants"].items():
        assert s["status"] == "scored" and s["bars_scored"] == 24 * days - 1, variant
        assert s["realized_usd"] == pytest.approx(inside["long_usd"].sum() + inside["short_usd"].sum(), rel=1e-9)
        for name in ("spearman_map", "spearman_bar_range", "spearman_side_excursion", "partial_spearman"):
            assert -1 <= s[name] <= 1, (variant, name)
        assert 0 <= s["realized_share_where_map_zero"] <= 1 and s["top10_notional_recall_side_excursion"] > 0
    assert card["best_variant"] in card["variants"] and set(card["targets"]) == set(scorecard.TARGETS)
