"""Issue 9's comparison: a backfill of 8 symbol-days (2 symbols × 4 days, raw → model → heatmap) with the
one-writer DuckDB file (the symbols one after the other) against Parquet partitions (the two symbols in two
processes at once), on the same simulated data; the tables must come out the same, row by row, within
TOLERANCE (the largest difference is reported)."""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = ("BTCUSDT", "ETHUSDT")
START = dt.date(2026, 1, 1)
DAYS = 4


def children_cpu() -> float:
    """User + system CPU seconds of the waited-for child processes so far (the backfill jobs)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _env(data: Path, sim: Path, storage: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQ_")}
    env.update(LIQ_DATA_DIR=str(data), LIQ_SIM_DIR=str(sim), LIQ_STORAGE=storage, LIQ_SYMBOLS=",".join(SYMBOLS),
               LIQ_START_DATE=START.isoformat())
    return env


def _job(env: dict[str, str], symbol: str) -> subprocess.Popen:
    last = START + dt.timedelta(days=DAYS - 1)
    return subprocess.Popen([sys.executable, str(ROOT / "bench" / "job.py"), "--stage", "backfill", "--symbol", symbol,
                             "--first", START.isoformat(), "--last", last.isoformat()],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines or not json.loads(lines[-1]).get("ok"):
        raise RuntimeError(f"backfill job failed:\n{out[-2000:]}\n{err[-4000:]}")
    return json.loads(lines[-1])


#: table: (key columns, compared value). Rows are matched on the key, values compared within TOLERANCE.
CHECKED = {
    "raw.agg_trades": (("symbol", "day", "agg_trade_id"), "{t}.price * {t}.quantity"),
    "model.liquidation_levels": (("symbol", "day", "variant", "side", "bin_id"), "{t}.notional_usd"),
    "model.liquidation_heatmap": (("symbol", "day", "variant", "snapshot_time", "side", "bin_id"), "{t}.notional_usd"),
}
#: Relative tolerance of the comparison. The model tables come out of DOUBLE aggregations whose summation order
#: DuckDB does not fix (a parallel scan), so two correct runs can differ in the last bits (~1e-15 relative);
#: anything above 1e-9 is a real divergence.
TOLERANCE = 1e-9


def compare_tables(con, left: str, right: str, keys: tuple[str, ...], value: str, rtol: float = TOLERANCE) -> dict:
    """Row-by-row comparison of two tables on `keys`: rows on each side, rows without a partner, and the
    largest absolute and relative difference of `value` (SQL with `{t}` for the table alias). `same` when every row has a partner within rtol."""
    on = " AND ".join(f"l.{k} IS NOT DISTINCT FROM r.{k}" for k in keys)
    lv, rv = value.format(t="l"), value.format(t="r")
    row = con.execute(f"""
        WITH l AS (SELECT * FROM {left}), r AS (SELECT * FROM {right}),
        j AS (SELECT l.{keys[0]} IS NOT NULL AS in_l, r.{keys[0]} IS NOT NULL AS in_r, {lv} AS a, {rv} AS b
              FROM l FULL OUTER JOIN r ON {on})
        SELECT count(*) FILTER (WHERE in_l), count(*) FILTER (WHERE in_r), count(*) FILTER (WHERE NOT (in_l AND in_r)),
               coalesce(max(abs(a - b)), 0),
               coalesce(max(abs(a - b) / greatest(abs(a), abs(b), 1e-300)) FILTER (WHERE a <> b), 0)
        FROM j""").fetchall()[0]
    rows_l, rows_r, unmatched, max_abs, max_rel = row
    return {"rows": [int(rows_l), int(rows_r)], "unmatched_rows": int(unmatched), "max_abs_diff": float(max_abs),
            "max_rel_diff": float(max_rel), "same": unmatched == 0 and max_rel <= rtol}


def bench_parquet_backfill(work: Path, trades_per_day: int = 200_000) -> dict:
    from liq_pipeline.sim import SimConfig, simulate
    from liq_pipeline.warehouse import parquet

    sim = work / f"sim-{trades_per_day}"
    if not (sim / "simulation.json").exists():
        simulate(SimConfig(symbols=SYMBOLS, start=START, days=DAYS, seed=9, out_dir=sim, trades_per_day=trades_per_day))
    timings, cpu = {}, {}
    for storage in ("duckdb", "parquet"):
        data = work / storage
        shutil.rmtree(data, ignore_errors=True)
        env = _env(data, sim, storage)
        t, c = time.perf_counter(), children_cpu()
        if storage == "duckdb":  # one writer: the symbols one after the other
            for symbol in SYMBOLS:
                _finish(_job(env, symbol))
        else:  # no lock: both symbols at once, in two processes
            for proc in [_job(env, symbol) for symbol in SYMBOLS]:
                _finish(proc)
        timings[storage], cpu[storage] = time.perf_counter() - t, children_cpu() - c
    pq = parquet.connect(str(work / "parquet" / "parquet"), read_only=True)
    try:
        pq.execute(f"ATTACH '{work / 'duckdb' / 'warehouse' / 'liq.duckdb'}' AS duck (READ_ONLY)")
        tables = {t: compare_tables(pq, f"duck.{t}", t, keys, value) for t, (keys, value) in CHECKED.items()}
    finally:
        pq.execute("DETACH DATABASE IF EXISTS duck")  # the views' DuckDB outlives the connection (warehouse/parquet.py)
        pq.close()
    return {"symbol_days": len(SYMBOLS) * DAYS, "trades_per_day": trades_per_day,
            "duckdb_one_writer_s": round(timings["duckdb"], 1), "parquet_two_processes_s": round(timings["parquet"], 1),
            "duckdb_cpu_s": round(cpu["duckdb"], 1), "parquet_cpu_s": round(cpu["parquet"], 1),
            "speedup": round(timings["duckdb"] / timings["parquet"], 2), "tolerance_rel": TOLERANCE,
            "tables": tables, "max_rel_diff": max(t["max_rel_diff"] for t in tables.values()),
            "same_results": all(t["same"] for t in tables.values())}
