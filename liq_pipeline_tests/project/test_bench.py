"""The benchmark cannot rot: its naive baselines agree with the pipeline's functions, and `bench/run.py`
runs every section end to end at a tiny scale. No timing is asserted here (CI machines are noisy)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liq_pipeline.model import profile
from liq_pipeline.model.grid import grid_for
from liq_pipeline.model.variants import NAMES as VARIANTS

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import naive  # noqa: E402
import run  # noqa: E402


def test_naive_ofi_loop_matches_the_vectorised_ofi():
    rng = np.random.default_rng(3)
    grid = grid_for("BTCUSDT")
    trades = pd.DataFrame({"price": rng.normal(90_000, 900, 5_000), "quantity": rng.exponential(0.05, 5_000),
                           "is_buyer_maker": rng.random(5_000) < 0.45})
    loop = naive.ofi_per_bin_loop(trades, grid)
    bins = grid.bin_id(trades["price"].to_numpy())
    frame = trades.assign(bin_id=bins, buy=np.where(trades.is_buyer_maker, 0, trades.quantity),
                          sell=np.where(trades.is_buyer_maker, trades.quantity, 0)).groupby("bin_id")[["buy", "sell"]].sum()
    vec = dict(zip(frame.index.astype(int), profile.ofi(frame["buy"], frame["sell"]), strict=False))
    assert loop.keys() == vec.keys()
    assert np.allclose([loop[k] for k in vec], [vec[k] for k in vec], atol=1e-12)


# Every section of make bench end to end, about 2-3 minutes: `make test-bench` runs it (kept out of `make test`
# so the suite stays well under CI's 10 minutes; `make bench` itself runs the same sections at full scale).
@pytest.mark.bench
@pytest.mark.timeout(900)  # ~3 min on an idle 2-core machine; the default 300 s is too tight on a busy one
def test_bench_runs_every_section_at_tiny_scale(tmp_path):
    results = tmp_path / "results.json"
    assert run.main(["--trades", "20000", "--series-trades", "4000", "--series-days", "8", "--backfill-days", "3",
                     "--scale-days", "2", "--parquet-trades", "3000", "--queries", "40", "--cold-runs", "2",
                     "--volatile-trades", "20000", "--year-days", "3", "--year-trades", "3000", "--year-chunk-days", "2",
                     "--load3-warm-up", "5", "--work", str(tmp_path / "work"), "--results", str(results)]) == 0
    out = json.loads(results.read_text())
    assert out["ingest"]["rows"] == 20_000 and out["ingest"]["ratio"] > 0
    assert out["refresh"]["windows"] == [7] and out["refresh"]["window_7_s"] > 0
    assert out["refresh_at_scale"]["trades_per_day"] == 20_000 and out["refresh_at_scale"]["seconds"] > 0
    for key in ("query", "query_loaded", "query_load3"):
        assert out[key]["queries"] == 40 and out[key]["p99_ms"] >= out[key]["p50_ms"] > 0
    for key in ("cold", "cold_loaded", "cold_load3"):  # a text answer imports neither Dagster nor pandas nor matplotlib
        assert out[key]["heatmap_median_ms"] > 0
        assert out[key]["heatmap_heavy_imports"] == out[key]["zones_heavy_imports"] == out[key]["help_heavy_imports"] == []
    assert out["heatmap"]["days"] == 3 and out["heatmap"]["variants"] == len(VARIANTS) and out["heatmap_loaded"]["seconds"] > 0
    assert out["series"]["backfill"]["peak_rss_mb"] > 0
    assert out["ofi"]["trades"] > 0
    assert out["serve_loaded"]["requests"] == out["serve_load3"]["requests"] == 20
    assert out["serve"]["requests"] == 20 and out["serve"]["view_1w_p99_ms"] >= out["serve"]["view_1w_p50_ms"] > 0
    assert out["parquet"]["symbol_days"] == 8 and out["parquet"]["same_results"] is True
    assert out["parquet"]["tables"]["model.liquidation_heatmap"]["unmatched_rows"] == 0
    assert out["series"]["backfill"]["cpu_seconds"] > 0
    volatile = out["volatile"]
    assert volatile["trades_per_day"] == 20_000 and volatile["ingest"]["rows"] > 19_000
    assert volatile["ingest"]["ratio"] > 0 and volatile["ingest"]["cpu_seconds"] > 0
    assert volatile["refresh"]["seconds"] > 0 and volatile["peak_rss_mb"] >= volatile["raw_stage"]["peak_rss_mb"] > 0
    year = out["year"]  # two chunks (2 + 1 days), each storage; projected to 365 days, the tables the same
    assert year["days"] == 3 and year["projected"] is True and year["duckdb"]["chunk_wall_s"][1] > 0
    assert len(year["parquet"]["round_wall_s"]) == 2 and year["parquet"]["year_wall_min"] > 0
    assert year["same_results"] is True, year["tables"]
    assert year["tables"]["model.liquidation_heatmap"]["unmatched_rows"] == 0
    assert year["tables"]["raw.agg_trades"]["rows"][0] > 0
    rows = run.with_load(run.table(out), out)
    assert {r[0][:2] for r in rows} >= {"a.", "b.", "c.", "d.", "e.", "f.", "g.", "h.", "i.", "j."}
    assert all(r[-1] in ("pass", "MISS") for r in rows)
    assert all(len(r) == len(run.HEADER) and r[-2] for r in rows)  # every row with its section's load average
    loaded = [r for r in rows if r[0].startswith(("c. liq heatmap --at", "d. heatmap 3 d"))]
    assert len(loaded) == 2 and all(r[1] and r[2] for r in loaded)  # alone and loaded side by side
    assert len([r for r in rows if r[0].startswith("c. at load ≥ 3")]) == 3 and any(r[0].startswith("h. at load ≥ 3")
                                                                                     for r in rows)


def test_a_failing_section_is_a_failed_row_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    def broken(*_):
        raise AssertionError("parquet and duckdb backfills differ")

    monkeypatch.setattr(run, "bench_ingest", broken)
    monkeypatch.setattr(run, "bench_parquet", lambda *_: {"symbol_days": 8, "duckdb_one_writer_s": 2.0,
                                                          "parquet_two_processes_s": 1.0, "speedup": 2.0,
                                                          "tolerance_rel": 1e-9, "max_rel_diff": 0.0,
                                                          "same_results": True})
    results = tmp_path / "results.json"
    assert run.main(["--only", "ingest", "parquet", "--work", str(tmp_path), "--results", str(results)]) == 1
    out = json.loads(results.read_text())
    assert out["ingest"] == {"failed": "AssertionError: parquet and duckdb backfills differ"}
    rows = run.with_load(run.table(out), out)
    assert ("a. ingest 1 day of aggTrades", "FAILED", "", "AssertionError: parquet and duckdb backfills differ",
            f"≤ {run.INGEST_TARGET}× limit", "", "FAIL") in rows
    assert any(r[0].startswith("g. backfill") and r[-1] == "pass" for r in rows)
    assert "Traceback" not in capsys.readouterr().err


def test_table_comparison_reports_the_largest_difference_within_a_stated_tolerance():
    import duckdb
    from parquet import compare_tables

    con = duckdb.connect()
    con.execute("CREATE TABLE a AS SELECT range AS k, 1e6 + range AS v FROM range(100)")
    con.execute("CREATE TABLE b AS SELECT k, v * (1 + 1e-15) AS v FROM a")  # last-bit noise: the same
    con.execute("CREATE TABLE c AS SELECT k, CASE WHEN k = 7 THEN v * (1 + 1e-6) ELSE v END AS v FROM a")
    con.execute("CREATE TABLE d AS SELECT * FROM a WHERE k <> 3")
    same = compare_tables(con, "a", "b", ("k",), "{t}.v")
    assert same["same"] and same["unmatched_rows"] == 0 and 0 < same["max_rel_diff"] < 1e-12
    off = compare_tables(con, "a", "c", ("k",), "{t}.v")
    assert not off["same"] and off["max_rel_diff"] == pytest.approx(1e-6, rel=1e-3)
    assert off["max_abs_diff"] == pytest.approx(1.000007, rel=1e-3)
    missing = compare_tables(con, "a", "d", ("k",), "{t}.v")
    assert not missing["same"] and missing["unmatched_rows"] == 1 and missing["rows"] == [100, 99]
