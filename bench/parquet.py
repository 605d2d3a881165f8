"""Issue 9's comparison: a backfill of 8 symbol-days (2 symbols × 4 days, raw → model → heatmap) with the
one-writer DuckDB file (the symbols one after the other) against Parquet partitions (the two symbols in two
processes at once), on the same simulated data; the tables must come out the same."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = ("BTCUSDT", "ETHUSDT")
START = dt.date(2026, 1, 1)
DAYS = 4
CHECKED = ("raw.agg_trades", "model.liquidation_levels", "model.liquidation_heatmap")


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


def _fingerprint(con, table: str) -> tuple:
    return con.execute(f"SELECT count(*), round(sum(hash(symbol, day)) / 1e12), "
                       f"round(sum({'notional_usd' if table.startswith('model') else 'price * quantity'}), 2) "
                       f"FROM {table}").fetchall()[0]


def bench_parquet_backfill(work: Path, trades_per_day: int = 200_000) -> dict:
    from liq_pipeline.market.simulator import SimConfig, simulate
    from liq_pipeline.warehouse import parquet

    sim = work / f"sim-{trades_per_day}"
    if not (sim / "simulation.json").exists():
        simulate(SimConfig(symbols=SYMBOLS, start=START, days=DAYS, seed=9, out_dir=sim, trades_per_day=trades_per_day))
    timings = {}
    for storage in ("duckdb", "parquet"):
        data = work / storage
        shutil.rmtree(data, ignore_errors=True)
        env = _env(data, sim, storage)
        t = time.perf_counter()
        if storage == "duckdb":  # one writer: the symbols one after the other
            for symbol in SYMBOLS:
                _finish(_job(env, symbol))
        else:  # no lock: both symbols at once, in two processes
            for proc in [_job(env, symbol) for symbol in SYMBOLS]:
                _finish(proc)
        timings[storage] = time.perf_counter() - t
    with duckdb.connect(str(work / "duckdb" / "warehouse" / "liq.duckdb"), read_only=True) as duck:
        pq = parquet.connect(str(work / "parquet" / "parquet"), read_only=True)
        same = {t: _fingerprint(duck, t) == _fingerprint(pq, t) for t in CHECKED}
    if not all(same.values()):
        raise AssertionError(f"parquet and duckdb backfills differ: {same}")
    return {"symbol_days": len(SYMBOLS) * DAYS, "trades_per_day": trades_per_day,
            "duckdb_one_writer_s": round(timings["duckdb"], 1), "parquet_two_processes_s": round(timings["parquet"], 1),
            "speedup": round(timings["duckdb"] / timings["parquet"], 2), "same_results": True}
