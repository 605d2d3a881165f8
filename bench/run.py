"""`make bench`: measure the pipeline against the physical limit and the naive approach, on simulated data.

Prints a table with a pass/MISS verdict per target and writes bench/results.json. Sections: ingest vs
unzip+read_csv; daily refresh and its growth with the window; cold `liq` processes and their imports;
`liq heatmap` query latency; the time-evolving heatmap over 30 days of 1m candles; peak RSS of a 30-day
backfill; naive per-bin / per-candle loops side by side; Parquet vs DuckDB backfill. The cold, query and
heatmap sections run again while a concurrent materialization runs in another process ("load"). A section
that raises is reported as FAILED and the others still run (exit code 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"


def _timeit(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1), "python": platform.python_version(),
            "duckdb": duckdb.__version__, "platform": platform.platform()}


def bench_ingest(work: Path, trades: int) -> dict:
    """(a) one day of `trades` aggTrades: pipeline ingest against unzip + DuckDB read_csv into a table (the
    simulated day is cached under `work`)."""
    from scale import ingest_vs_limit

    from liq_pipeline.apps.demo import _simulation_current
    from liq_pipeline.market.formats import ArchiveFile
    from liq_pipeline.sim import SimConfig, simulate

    day = dt.date(2026, 1, 1)
    sim_dir = work / f"sim-ingest-{trades}"
    t = time.perf_counter()
    if not _simulation_current(sim_dir, ("BTCUSDT",), day, 1, 1):
        shutil.rmtree(sim_dir, ignore_errors=True)
        simulate(SimConfig(symbols=("BTCUSDT",), start=day, days=1, seed=1, out_dir=sim_dir, trades_per_day=trades))
    sim_s = time.perf_counter() - t
    zip_path = sim_dir / ArchiveFile("aggTrades", "BTCUSDT", day).relpath
    return {**ingest_vs_limit(zip_path, day, "BTCUSDT"), "simulate_s": round(sim_s, 1), "target_ratio": INGEST_TARGET}


# ---------------------------------------------------------------------------------------------- a series
SYMBOL = "BTCUSDT"
START = dt.date(2026, 1, 1)
SERIES_DAYS = 90
SERIES_SEED = 5


class Series:
    """A simulated symbol over SERIES_DAYS days in its own data folder, and jobs that run on it."""

    def __init__(self, work: Path, trades_per_day: int, days: int = SERIES_DAYS):
        self.trades_per_day, self.days, self.symbol = trades_per_day, days, SYMBOL
        self.data = work / f"series-{SYMBOL}-{days}d-{trades_per_day}"
        self.sim = self.data / "archive-sim"
        self.db = self.data / "warehouse" / "liq.duckdb"
        self.env = {**os.environ, "LIQ_DATA_DIR": str(self.data), "LIQ_SYMBOLS": SYMBOL,
                    "LIQ_START_DATE": START.isoformat(), "LIQ_SOURCE": "simulated"}
        for name in ("LIQ_WAREHOUSE", "LIQ_SIM_DIR", "LIQ_WINDOW_DAYS", "LIQ_PROFILE_SOURCE"):
            self.env.pop(name, None)

    def day(self, n: int) -> dt.date:
        return START + dt.timedelta(days=n - 1)

    def simulate(self) -> float:
        from liq_pipeline.apps.demo import _simulation_current
        from liq_pipeline.sim import SimConfig, simulate

        if _simulation_current(self.sim, (SYMBOL,), START, self.days, SERIES_SEED):
            manifest = json.loads((self.sim / "simulation.json").read_text())
            if manifest["config"].get("trades_per_day") == self.trades_per_day:
                return 0.0
        shutil.rmtree(self.data, ignore_errors=True)
        t = time.perf_counter()
        simulate(SimConfig(symbols=(SYMBOL,), start=START, days=self.days, seed=SERIES_SEED, out_dir=self.sim,
                           trades_per_day=self.trades_per_day))
        return time.perf_counter() - t

    def start_job(self, stage: str, first: int, last: int, repeat: int = 1, raw: tuple[int, int] | None = None,
                  held_open: bool = False, **env) -> subprocess.Popen:
        """Start bench/job.py in a fresh process (its own peak RSS, its own settings); `finish_job` waits.
        `held_open`: the DuckDB warehouse held open for the whole job, as `liq demo` runs its chain."""
        cmd = [sys.executable, str(ROOT / "bench" / "job.py"), "--stage", stage, "--symbol", SYMBOL,
               "--first", self.day(first).isoformat(), "--last", self.day(last).isoformat(), "--repeat", str(repeat)]
        if held_open:
            cmd.append("--held-open")
        if raw is not None:  # the raw group's own day range
            cmd += ["--raw-first", self.day(raw[0]).isoformat(), "--raw-last", self.day(raw[1]).isoformat()]
        proc = subprocess.Popen(cmd, env={**self.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT)
        proc.stage = stage
        return proc

    @staticmethod
    def finish_job(proc: subprocess.Popen) -> dict:
        stdout, stderr = proc.communicate()
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines or not json.loads(lines[-1]).get("ok"):
            raise RuntimeError(f"bench job {proc.stage} failed:\n{stdout[-2000:]}\n{stderr[-4000:]}")
        return json.loads(lines[-1])

    def job(self, stage: str, first: int, last: int, repeat: int = 1, raw: tuple[int, int] | None = None,
            held_open: bool = False, **env) -> dict:
        """Run bench/job.py in a fresh process and wait for its JSON line."""
        return self.finish_job(self.start_job(stage, first, last, repeat, raw, held_open, **env))


def prepare_series(work: Path, trades_per_day: int, backfill_days: int = 30,
                   days: int = SERIES_DAYS) -> tuple[Series, dict]:
    """Simulate, backfill the first `backfill_days` days through every stage (peak RSS measured), then the raw
    tables and daily profiles of the remaining days (the refresh needs up to 90 days of them)."""
    series = Series(work, trades_per_day, days)
    info = {"trades_per_day": trades_per_day, "days": days, "simulate_s": round(series.simulate(), 1)}
    shutil.rmtree(series.db.parent, ignore_errors=True)
    backfill = series.job("backfill", 1, backfill_days)
    info["backfill"] = {"days": backfill_days, "seconds": round(backfill["seconds"], 1),
                        "cpu_seconds": round(backfill["cpu_seconds"], 1), "peak_rss_mb": round(backfill["peak_rss_mb"])}
    rest = [series.job(stage, backfill_days + 1, days) for stage in ("raw", "profiles")] if days > backfill_days else []
    info["raw_and_profiles_of_remaining_days_s"] = round(sum(r["seconds"] for r in rest), 1)
    return series, info


def bench_refresh(series: Series, windows: tuple[int, ...] = (7, 30, 90)) -> dict:
    """(b) the daily refresh of the last day, daily profile → levels, for windows of 7, 30 and 90 days
    (best of 3, each in a fresh process, Dagster's run overhead included)."""
    windows = tuple(w for w in windows if w <= series.days)
    out = {"windows": list(windows)}
    for window in windows:
        r = series.job("refresh", series.days, series.days, repeat=3, LIQ_WINDOW_DAYS=str(window))
        out[f"window_{window}_s"] = round(r["seconds"], 3)
        out[f"window_{window}_cpu_s"] = round(r["cpu_seconds"], 3)
    out["growth"] = round(out[f"window_{windows[-1]}_s"] / out[f"window_{windows[0]}_s"], 2)
    return out


def bench_refresh_at_scale(work: Path, trades_per_day: int, days: int = 8) -> dict:
    """(b) the same daily refresh on a day of `trades_per_day` aggTrades (the issue's 1.5 M), window 7 days."""
    series = Series(work, trades_per_day, days)
    info = {"trades_per_day": trades_per_day, "simulate_s": round(series.simulate(), 1)}
    shutil.rmtree(series.db.parent, ignore_errors=True)
    for stage in ("raw", "profiles"):
        series.job(stage, 1, days)
    r = series.job("refresh", days, days, repeat=3, LIQ_WINDOW_DAYS="7")
    return {**info, "window_days": 7, "seconds": round(r["seconds"], 3), "cpu_seconds": round(r["cpu_seconds"], 3)}


def _liq_command() -> list[str]:
    """The `liq` console script of this interpreter (what a user runs), else `python -m liq_pipeline.cli`."""
    script = Path(sys.executable).parent / "liq"
    return [str(script)] if script.exists() else [sys.executable, "-m", "liq_pipeline.cli"]


def _random_instants(series: Series, backfill_days: int, n: int, seed: int) -> list[dt.datetime]:
    import random

    rng = random.Random(seed)
    return [dt.datetime.combine(series.day(2), dt.time()) + dt.timedelta(minutes=rng.randrange((backfill_days - 1) * 1440))
            for _ in range(n)]


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    xs = sorted(latencies)
    return round(1000 * xs[len(xs) // 2], 1), round(1000 * xs[min(len(xs) - 1, int(len(xs) * 0.99))], 1)


def bench_query(series: Series, backfill_days: int, n: int = 200) -> dict:
    """(c) `liq heatmap --at` answers: n in-process calls at random instants, as the CLI answers them (from
    the answer files, docs/answer-files.md: a call that falls back to the warehouse fails the section), with
    the CPU time of each call; then the same instants read from the warehouse as the CLI did before the
    files (a fresh read-only connection each), and on one connection held open."""
    import contextlib
    import io

    from liq_pipeline.cli import main as cli
    from liq_pipeline.model import variants

    latencies, cpu = [], []
    instants = _random_instants(series, backfill_days, n, 1)
    for at in instants:
        argv = ["heatmap", SYMBOL, "--at", at.strftime("%Y-%m-%dT%H:%M"), "--format", "json",
                "--warehouse", str(series.db)]
        sink, err = io.StringIO(), io.StringIO()
        t, c = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(err):
            code = cli.main(argv)
        latencies.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        if code != 0 or err.getvalue():
            raise RuntimeError(f"liq {' '.join(argv)} exited {code}, not from its answer file: {err.getvalue()[:300]}")

    def from_warehouse(con, at):
        snapshot, day = cli.resolve_snapshot(con, SYMBOL, variants.DEFAULT, at)
        cli.snapshot_levels(con, SYMBOL, variants.DEFAULT, snapshot, day)
        cli._mark_at(con, SYMBOL, snapshot)

    fresh = []
    for at in instants:
        t = time.perf_counter()
        with cli.connect_read_only(series.db) as con:
            from_warehouse(con, at)
        fresh.append(time.perf_counter() - t)
    # The same queries on a connection held open (a notebook or a service), where DuckDB's caches are warm.
    held = []
    with cli.connect_read_only(series.db) as con:
        for at in _random_instants(series, backfill_days, n, 2):
            t = time.perf_counter()
            from_warehouse(con, at)
            held.append(time.perf_counter() - t)
    p50, p99 = _percentiles(latencies)
    cpu50, cpu99 = _percentiles(cpu)
    fresh50, fresh99 = _percentiles(fresh)
    held50, held99 = _percentiles(held)
    return {"queries": n, "p50_ms": p50, "p99_ms": p99, "cpu_p50_ms": cpu50, "cpu_p99_ms": cpu99,
            "fresh_connection_p50_ms": fresh50, "fresh_connection_p99_ms": fresh99,
            "open_connection_p50_ms": held50, "open_connection_p99_ms": held99}


def bench_serve(db: Path, label: str, n: int = 20) -> dict:
    """(h) `liq serve` answers over HTTP: the heatmap of a 1-week lookback (/api/view) and the map of one
    instant (/api/instant), n requests each at end times stepping back through the warehouse, the app under
    uvicorn on 127.0.0.1 in this process (a fresh read-only connection per request, as the page does)."""
    import threading

    import requests
    import uvicorn

    from liq_pipeline.apps.serve import build_app
    from liq_pipeline.warehouse.heatmap_view import materialized, open_read_only

    with open_read_only(db) as con:
        entry = next(m for m in materialized(con) if m.variant == "flow")
    first_end = dt.datetime.combine(entry.first_day, dt.time()) + dt.timedelta(days=8)
    ends = [entry.latest_snapshot - dt.timedelta(hours=7 * i) for i in range(n)]
    ends = [max(e, min(first_end, entry.latest_snapshot)) for e in ends]
    server = uvicorn.Server(uvicorn.Config(build_app(str(db), storage="duckdb"), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    out = {"warehouse": label, "symbol": entry.symbol, "requests": n}
    try:
        with requests.Session() as http:
            for name, path, extra in (("view_1w", "/api/view", {}), ("instant", "/api/instant", {}),
                                      ("view_1w_leverage", "/api/view", {"lev": "10,20"})):
                latencies, size = [], 0
                # The first request of a process imports what the route needs (scikit-learn for the zones,
                # about 2 s): reported apart, not in the percentiles.
                t = time.perf_counter()
                http.get(f"http://127.0.0.1:{port}{path}", params={"symbol": entry.symbol, "lookback": "1w", **extra},
                         timeout=60)
                out[f"{name}_first_ms"] = round(1000 * (time.perf_counter() - t), 1)
                for end in ends:
                    params = {"symbol": entry.symbol, "variant": "flow", "lookback": "1w",
                              "end": end.isoformat(timespec="minutes"), **extra}
                    t = time.perf_counter()
                    r = http.get(f"http://127.0.0.1:{port}{path}", params=params, timeout=30)
                    latencies.append(time.perf_counter() - t)
                    if r.status_code != 200:
                        raise RuntimeError(f"{path} {params}: {r.status_code} {r.text[:300]}")
                    size = max(size, len(r.content))
                out[f"{name}_p50_ms"], out[f"{name}_p99_ms"] = _percentiles(latencies)
                out[f"{name}_kb"] = round(size / 1024)
    finally:
        server.should_exit = True
        thread.join(10)
    return out


#: Modules a text answer of `liq` must not import (each costs 0.1-1 s of a cold start).
HEAVY_MODULES = ("dagster", "pandas", "matplotlib", "plotly", "numpy", "pyarrow", "requests", "duckdb")


def bench_cold(series: Series, runs: int = 7) -> dict:
    """(c) cold processes: `liq heatmap SYMBOL`, `liq zones SYMBOL` and `liq --help`, each `runs` times in a
    fresh process (median and worst), and which heavy modules `python -X importtime` sees them import.
    (`duckdb` here is the Python package around the engine: the CLI loads the compiled `_duckdb` only.)"""
    liq = _liq_command()
    commands = {"heatmap": ["heatmap", SYMBOL, "--warehouse", str(series.db)],
                "zones": ["zones", SYMBOL, "--warehouse", str(series.db)],
                "help": ["--help"]}
    out = {"runs": runs}
    for name, args in commands.items():
        times, cpu = [], []
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(liq + args, env=series.env, capture_output=True, check=True, cwd=ROOT)
            times.append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        times.sort()
        cpu.sort()
        out[f"{name}_median_ms"] = round(1000 * times[len(times) // 2])
        out[f"{name}_max_ms"] = round(1000 * times[-1])
        # CPU time of the process (user + system): the work itself, which a busy machine does not inflate
        # the way it inflates the wall time (waiting for a core).
        out[f"{name}_cpu_median_ms"] = round(1000 * cpu[len(cpu) // 2])
        trace = subprocess.run([sys.executable, "-X", "importtime", "-m", "liq_pipeline.cli", *args], env=series.env,
                               capture_output=True, text=True, check=True, cwd=ROOT).stderr
        imported = {line.split("|")[-1].strip().split(".")[0] for line in trace.splitlines() if "|" in line}
        out[f"{name}_heavy_imports"] = sorted(imported & set(HEAVY_MODULES))
    bare = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True)
        bare.append(time.perf_counter() - t)
    out["python_startup_ms"] = round(1000 * sorted(bare)[len(bare) // 2])
    return out


class ConcurrentMaterialization:
    """A Dagster materialization running in another process while a section is measured (issue 17's loaded
    case): the series' raw -> model -> heatmap backfill of `days` later days, over and over until stopped.

    It writes its own warehouse file: DuckDB allows one writer per file and no reader in another process
    while it writes, so a run writing the same DuckDB file would lock `liq` out instead of slowing it down
    (with LIQ_STORAGE=parquet it would be the same root, another partition). It competes for the same CPU
    cores, memory bandwidth and disk, which is what slows the measured answers."""

    def __init__(self, series: Series, first: int, days: int = 3):
        self.series, self.first, self.days = series, first, days
        self.data = series.data / "concurrent"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ConcurrentMaterialization:
        shutil.rmtree(self.data, ignore_errors=True)
        env = {**self.series.env, "LIQ_DATA_DIR": str(self.data), "LIQ_SIM_DIR": str(self.series.sim)}
        last = min(self.first + self.days - 1, self.series.days)
        cmd = [sys.executable, str(ROOT / "bench" / "job.py"), "--stage", "backfill", "--symbol", SYMBOL,
               "--first", self.series.day(self.first).isoformat(), "--last", self.series.day(last).isoformat(),
               "--repeat", "1000"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Measure only once it writes: its warehouse file appears with the first partition.
        deadline = time.monotonic() + 120
        while not (self.data / "warehouse" / "liq.duckdb").exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the concurrent materialization exited with code {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("the concurrent materialization did not start writing within 120 s")
            time.sleep(0.2)
        return self

    def still_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _concurrent_first(series: Series, backfill_days: int) -> int:
    """The first day the concurrent materialization writes: after the backfilled ones."""
    return min(backfill_days + 1, max(series.days - 2, 1))


def load_average_text() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def loaded(fn, series: Series, backfill_days: int, *args) -> dict:
    """`fn(series, backfill_days, *args)` while a concurrent materialization writes other days."""
    with ConcurrentMaterialization(series, _concurrent_first(series, backfill_days)) as writer:
        out = fn(series, backfill_days, *args)
        if not writer.still_running():
            raise RuntimeError("the concurrent materialization stopped before the measurement ended")
    return out


def _heatmap_days(series: Series, days: list[int], cpu: list | None = None) -> tuple[float, list]:
    """Wall time and results of the heatmap of `days`; its CPU time (all threads) is appended to `cpu`."""
    from liq_pipeline.pipeline.heatmap_day import compute_heatmap_day

    results = []
    with duckdb.connect(str(series.db), read_only=True) as con:
        t, c = time.perf_counter(), time.process_time()
        for n in days:  # as the asset runs a range: each day starts from the day computed before it
            results.append(compute_heatmap_day(con, SYMBOL, series.day(n), previous=results[-1] if results else None))
        if cpu is not None:
            cpu.append(time.process_time() - c)
        return time.perf_counter() - t, results


def bench_heatmap(series: Series, backfill_days: int) -> dict:
    """(d) the time-evolving heatmap, every variant, over `backfill_days` days of 1m candles: each variant's
    book snapshots (computed by flow_book, the one engine) read back with the day's mark path and OI."""
    cpu: list[float] = []
    seconds, results = _heatmap_days(series, list(range(1, backfill_days + 1)), cpu)
    return {"days": backfill_days, "mark_candles": backfill_days * 1440, "variants": len(results[0].variants),
            "seconds": round(seconds, 2), "cpu_seconds": round(cpu[0], 2)}


def bench_ofi(series: Series, day: int = 30) -> dict:
    """(f) OFI over the 30-day window: the pipeline (sum of stored daily profiles, SQL) against a script that
    loads the window's trades into pandas and loops over the price bins. Same numbers, checked."""
    from naive import load_window_trades, ofi_per_bin_loop

    from liq_pipeline.model import profile
    from liq_pipeline.model.grid import grid_for
    from liq_pipeline.warehouse import profile_sql

    d = series.day(day)
    params = {"symbol": SYMBOL, "day": d, "window_start": d - dt.timedelta(days=29)}
    with duckdb.connect(str(series.db), read_only=True) as con:
        def pipeline():
            frame = con.execute(profile_sql.baseline_sql(), params).df()
            return dict(zip(frame["bin_id"].astype(int), profile.ofi(frame["buy_qty"], frame["sell_qty"]), strict=False))

        t, c = time.perf_counter(), time.process_time()
        ours = pipeline()
        ours_s, ours_cpu = time.perf_counter() - t, time.process_time() - c
        t = time.perf_counter()
        trades = load_window_trades(con, SYMBOL, params["window_start"], d)
        naive = ofi_per_bin_loop(trades, grid_for(SYMBOL))
        naive_s = time.perf_counter() - t
    if ours.keys() != naive.keys() or not np.allclose([ours[k] for k in ours], [naive[k] for k in ours], atol=1e-9):
        raise AssertionError("naive OFI differs from the pipeline's")
    return {"window_days": 30, "trades": len(trades), "bins": len(ours), "pipeline_s": round(ours_s, 3),
            "pipeline_cpu_s": round(ours_cpu, 3),
            "naive_s": round(naive_s, 2), "naive_ratio": round(naive_s / ours_s, 1)}


def bench_parquet(work: Path, trades_per_day: int) -> dict:
    """Issue 9's backfill comparison: 8 symbol-days, DuckDB with one writer vs Parquet in two processes."""
    from parquet import bench_parquet_backfill

    return bench_parquet_backfill(work / "parquet", trades_per_day)


# ---------------------------------------------------------------------------------------------- report
#: Issue 29's targets: the 1.6 M-trade ingest ≤ 1.2× the limit with margin, ≤ 1.15× on an idle run (the verdict
#: uses the idle figure); the 30-day backfill's peak RSS ≤ 1 GB; the volatile day (8 M aggTrades) ingest ≤ 1.2×,
#: peak RSS < 2 GB and refresh < 5 s; a year of one symbol ≤ 60 min with DuckDB, faster with Parquet.
INGEST_TARGET = 1.15
BACKFILL_RSS_MB = 1024
VOLATILE_INGEST_TARGET = 1.2
VOLATILE_RSS_MB = 2048
VOLATILE_REFRESH_S = 5
YEAR_MIN = 60

#: Section -> the metric rows it produces (for the FAILED row of a section that raised).
TARGETS = {
    "ingest": ("a. ingest 1 day of aggTrades", f"≤ {INGEST_TARGET}× limit"),
    "refresh_at_scale": ("b. daily refresh at scale", "< 3 s"),
    "series": ("e. peak RSS, backfill", f"≤ {BACKFILL_RSS_MB} MB"),
    "refresh": ("b. daily refresh, windows", "< 3 s, flat"),
    "cold": ("c. cold `liq heatmap` process", "< 150 ms"),
    "query": ("c. liq heatmap --at", "p99 < 50 ms"),
    "heatmap": ("d. heatmap of the backfill", "< 3 s"),
    "ofi": ("f. OFI, 30-day window", "faster"),
    "parquet": ("g. backfill parquet vs duckdb", "same tables"),
    "serve": ("h. liq serve, 1-week lookback", "< 300 ms"),
    "serve_demo": ("h. liq serve on the demo warehouse, 1-week lookback", "< 300 ms"),
    "volatile": ("i. volatile day", "ingest ≤ 1.2× limit, refresh < 5 s, RSS < 2048 MB"),
    "year": ("j. a year of one symbol", "≤ 60 min, Parquet faster, same tables"),
}
SERVE_MS = 300
QUERY_P99_MS = 50
COLD_MS = 150
HEATMAP_S = 3


def _loaded(results: dict, name: str) -> dict | None:
    r = results.get(f"{name}_loaded")
    return r if r and "failed" not in r else None


def _cpu(r: dict) -> str:
    """' (CPU x s)' when the section measured its CPU time (all threads of the process)."""
    return _cpu_of(r, "cpu_seconds")


def _cpu_of(r: dict, key: str) -> str:
    return f" (CPU {r[key]:.2f} s)" if key in r else ""


def scale_rows(results: dict, ok, verdict) -> list[tuple[str, ...]]:
    """Rows of issue 29's full-size sections: the volatile day (i) and a year of one symbol (j)."""
    rows = []
    if ok("volatile"):
        r = results["volatile"]
        ing, ref, raw = r["ingest"], r["refresh"], r["raw_stage"]
        rows.append((f"i. volatile day, {ing['rows']:,} aggTrades: ingest", f"{ing['pipeline_s']:.2f} s{_cpu(ing)}", "",
                     f"limit {ing['limit_s']:.2f} s{_cpu_of(ing, 'limit_cpu_s')} (×{ing['ratio']}); zip {ing['zip_mb']} MB",
                     f"≤ {VOLATILE_INGEST_TARGET}× limit", verdict(ing["ratio"] <= VOLATILE_INGEST_TARGET)))
        rows.append(("i. volatile day: daily refresh", f"{ref['seconds']:.2f} s{_cpu(ref)}", "",
                     f"window {ref['window_days']} d (2 days stored)", f"< {VOLATILE_REFRESH_S} s",
                     verdict(ref["seconds"] < VOLATILE_REFRESH_S)))
        rows.append(("i. volatile day: peak RSS", f"{r['peak_rss_mb']:,} MB", "",
                     f"raw stage {raw['peak_rss_mb']:,} MB ({raw['seconds']} s, CPU {raw['process_cpu_s']} s with "
                     f"the process start), refresh {ref['peak_rss_mb']:,} MB", f"< {VOLATILE_RSS_MB} MB",
                     verdict(r["peak_rss_mb"] < VOLATILE_RSS_MB)))
    if ok("year"):
        r = results["year"]
        d, q = r["duckdb"], r["parquet"]
        how = f"projected from {r['days']} d" if r["projected"] else f"{r['days']} d"
        label = f"{r['trades_per_day'] / 1e6:g} M aggTrades/day"
        duck_name = "DuckDB, one writer held open" if d.get("held_open") else "DuckDB, one writer"
        for name, x in ((duck_name, d), ("Parquet, 2 processes", q)):
            per_day = f", {x['cpu_s_per_day']} s/day" if "cpu_s_per_day" in x else ""
            rows.append((f"j. a year of one symbol, {label}, {name}",
                         f"{x['year_wall_min']} min ({how}; measured {x['wall_s']} s, CPU {x['cpu_s']} s{per_day})", "",
                         f"year CPU {x['year_cpu_min']} min, storage {x['year_storage_gb']} GB, peak RSS "
                         f"{x['peak_rss_mb']:,} MB" + (f" (both processes {x['peak_rss_two_processes_mb']:,} MB)"
                                                      if "peak_rss_two_processes_mb" in x else ""),
                         f"≤ {YEAR_MIN} min" if x is d else "faster than DuckDB, same tables",
                         verdict(d["year_wall_min"] <= YEAR_MIN) if x is d else
                         verdict(q["year_wall_min"] < d["year_wall_min"], r["same_results"])))
        rows.append((f"j. a year of one symbol: tables, DuckDB vs Parquet ({r['days']} d)",
                     "same" if r["same_results"] else "DIFFERENT", "",
                     "; ".join(f"{t} {v['rows'][0]:,} rows" for t, v in r["tables"].items())
                     + f"; largest rel. diff {r['max_rel_diff']:.1e}", "same tables", verdict(r["same_results"])))
    return rows


#: Metric prefix -> the section whose load average a row shows (alone / with the concurrent run).
LOAD_OF = (("c. at load ≥ 3: cold", "cold_load3"), ("c. at load", "query_load3"), ("h. at load", "serve_load3"),
           ("a.", "ingest"), ("b. daily refresh, window", "refresh"), ("b.", "refresh_at_scale"), ("c. cold", "cold"),
           ("c.", "query"), ("d.", "heatmap"), ("e.", "series"), ("f.", "ofi"), ("g.", "parquet"),
           ("h. liq serve on the demo", "serve_demo"), ("h.", "serve"), ("i.", "volatile"), ("j.", "year"))


def with_load(rows, results: dict) -> list[tuple[str, ...]]:
    """Each row with the 1-minute load average at the end of its section (alone / with the concurrent run),
    before the verdict."""
    out = []
    for r in rows:
        name = next((n for prefix, n in LOAD_OF if r[0].startswith(prefix)), None)
        loads = [results.get(k, {}).get("load_average_1m") for k in (name, f"{name}_loaded")] if name else []
        out.append((*r[:-1], " / ".join(f"{x:.1f}" for x in loads if x is not None), r[-1]))
    return out


def table(results: dict) -> list[tuple[str, str, str, str, str, str]]:
    """(metric, alone, with a concurrent materialization, compared with, target, verdict) rows. A section that
    raised is one FAILED row; a target is met only if it holds in both columns."""
    rows = []

    def verdict(*ok: bool) -> str:
        return "pass" if all(ok) else "MISS"

    for name, (metric, target) in TARGETS.items():
        for key in (name, f"{name}_loaded"):
            if isinstance(results.get(key), dict) and "failed" in results[key]:
                col = ("FAILED", "") if key == name else ("", "FAILED")
                rows.append((metric, *col, results[key]["failed"].splitlines()[0][:100], target, "FAIL"))
    ok = lambda name: name in results and "failed" not in results[name]  # noqa: E731
    if ok("ingest"):
        r = results["ingest"]
        rows.append((f"a. ingest 1 day, {r['rows']:,} aggTrades", f"{r['pipeline_s']:.2f} s{_cpu(r)}", "",
                     f"limit {r['limit_s']:.2f} s{_cpu_of(r, 'limit_cpu_s')} (×{r['ratio']})",
                     f"≤ {INGEST_TARGET}× limit (idle)", verdict(r["ratio"] <= INGEST_TARGET)))
    if ok("refresh_at_scale"):
        q = results["refresh_at_scale"]
        rows.append((f"b. daily refresh, {q['trades_per_day']:,} aggTrades/day", f"{q['seconds']:.2f} s{_cpu(q)}", "",
                     "window 7 d", "< 3 s", verdict(q["seconds"] < 3)))
    if ok("refresh"):
        r = results["refresh"]
        times = [r[f"window_{w}_s"] for w in r["windows"]]
        rows.append((f"b. daily refresh, window {'/'.join(map(str, r['windows']))} d",
                     " / ".join(f"{t:.2f}" for t in times) + " s"
                     + (f" (CPU {' / '.join(str(r[f'window_{w}_cpu_s']) for w in r['windows'])} s)"
                        if all(f"window_{w}_cpu_s" in r for w in r["windows"]) else ""), "",
                     f"{r['windows'][-1]} d vs {r['windows'][0]} d ×{r['growth']}", "< 3 s, flat",
                     verdict(max(times) < 3 and r["growth"] < 1.5)))
    if ok("cold"):
        r, lo = results["cold"], _loaded(results, "cold")
        for cmd, label, target in (("heatmap", f"c. cold `liq heatmap {SYMBOL}` process", COLD_MS),
                                   ("zones", f"c. cold `liq zones {SYMBOL}` process", COLD_MS),
                                   ("help", "c. cold `liq --help` process", None)):
            heavy = r[f"{cmd}_heavy_imports"] + (lo[f"{cmd}_heavy_imports"] if lo else [])
            cells = [f"{x[f'{cmd}_median_ms']} ms (max {x[f'{cmd}_max_ms']}; CPU {x.get(f'{cmd}_cpu_median_ms', '?')})"
                     if x else "" for x in (r, lo)]
            meets = [x[f"{cmd}_median_ms"] < target for x in (r, lo) if x] if target else []
            rows.append((label, *cells, f"heavy imports: {', '.join(sorted(set(heavy))) or 'none'}; "
                         f"python alone {r['python_startup_ms']} ms",
                         f"< {target} ms, no heavy import" if target else "no heavy import",
                         verdict(not heavy, *meets)))
    if ok("query"):
        r, lo = results["query"], _loaded(results, "query")
        cell = lambda x, k: f"p50 {x[k + 'p50_ms']} ms, p99 {x[k + 'p99_ms']} ms" if x else ""  # noqa: E731
        cpu = lambda x: f" (CPU p99 {x['cpu_p99_ms']} ms)" if x and "cpu_p99_ms" in x else ""  # noqa: E731
        fresh = " / ".join(f"p99 {x['fresh_connection_p99_ms']} ms" for x in (r, lo) if x and "fresh_connection_p99_ms" in x)
        rows.append((f"c. liq heatmap --at, {r['queries']} calls", cell(r, "") + cpu(r), cell(lo, "") + cpu(lo),
                     "from the answer files (docs/answer-files.md); from the warehouse with a fresh connection "
                     f"each, as before them: {fresh or '?'}", f"p99 < {QUERY_P99_MS} ms",
                     verdict(*(x["p99_ms"] < QUERY_P99_MS for x in (r, lo) if x))))
        rows.append(("c. same queries, warehouse connection held open", cell(r, "open_connection_"),
                     cell(lo, "open_connection_"), "", f"p99 < {QUERY_P99_MS} ms",
                     verdict(*(x["open_connection_p99_ms"] < QUERY_P99_MS for x in (r, lo) if x))))
    if ok("heatmap"):
        r, lo = results["heatmap"], _loaded(results, "heatmap")
        rows.append((f"d. heatmap {r['days']} d of 1m candles, {r['variants']} variants", f"{r['seconds']:.2f} s{_cpu(r)}",
                     f"{lo['seconds']:.2f} s{_cpu(lo)}" if lo else "", "", f"< {HEATMAP_S} s",
                     verdict(*(x["seconds"] < HEATMAP_S for x in (r, lo) if x))))
    if ok("series"):
        r = results["series"]["backfill"]
        rows.append((f"e. peak RSS, {r['days']}-day backfill", f"{r['peak_rss_mb']:,} MB", "",
                     f"{r['seconds']} s{_cpu(r)}", f"≤ {BACKFILL_RSS_MB} MB", verdict(r["peak_rss_mb"] <= BACKFILL_RSS_MB)))
    if ok("ofi"):
        r = results["ofi"]
        rows.append((f"f. OFI, 30-day window, {r['trades']:,} trades", f"{r['pipeline_s'] * 1000:.0f} ms"
                     + (f" (CPU {r['pipeline_cpu_s'] * 1000:.0f} ms)" if "pipeline_cpu_s" in r else ""), "",
                     f"naive {r['naive_s']:.2f} s (×{r['naive_ratio']})", "faster", verdict(r["naive_ratio"] > 1)))
    if ok("parquet"):
        r = results["parquet"]
        rows.append((f"g. backfill {r['symbol_days']} symbol-days, parquet ×2 processes",
                     f"{r['parquet_two_processes_s']:.1f} s"
                     + (f" (CPU {r['parquet_cpu_s']:.1f} s; duckdb {r['duckdb_cpu_s']:.1f} s)" if "parquet_cpu_s" in r else ""),
                     "",
                     f"duckdb, one writer {r['duckdb_one_writer_s']:.1f} s (×{r['speedup']}); "
                     f"largest rel. diff {r['max_rel_diff']:.1e}",
                     f"same tables (rel. {r['tolerance_rel']:.0e})", verdict(r["same_results"])))
    rows += scale_rows(results, ok, verdict)
    for key in ("serve", "serve_demo"):
        if ok(key):
            r, lo = results[key], _loaded(results, key)
            for name, label in (("view_1w", "heatmap, 1-week lookback"), ("view_1w_leverage", "same, leverage filter"),
                                ("instant", "map of one instant")):
                cells = [f"p50 {x[name + '_p50_ms']} ms, p99 {x[name + '_p99_ms']} ms" if x else "" for x in (r, lo)]
                rows.append((f"h. liq serve {label} ({r['warehouse']} warehouse)", *cells,
                             f"{r['requests']} HTTP requests, {r[name + '_kb']} kB; first request of the "
                             f"process {r[name + '_first_ms']} ms", f"< {SERVE_MS} ms",
                             verdict(*(x[name + "_p99_ms"] < SERVE_MS for x in (r, lo) if x))))
    from answers import load3_rows

    rows += load3_rows(results, verdict, COLD_MS, QUERY_P99_MS, SERVE_MS)
    return rows


HEADER = ("metric", "alone", "with a concurrent run", "compared with", "target", "load avg", "")


def print_table(rows) -> None:
    widths = [max(len(str(r[i])) for r in [*rows, HEADER]) for i in range(len(HEADER))]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(HEADER, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(f"{str(v):<{w}}" for v, w in zip(r, widths, strict=True)))


def markdown_table(rows) -> str:
    """The table as markdown (for the README)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return "\n".join(lines + ["| " + " | ".join(str(v) for v in r) + " |" for r in rows])


SECTIONS = ("ingest", "refresh_at_scale", "series", "refresh", "cold", "query", "heatmap", "ofi", "serve", "parquet",
            "load", "load3", "volatile", "year")
#: The demo's warehouse (`make demo`): `liq serve` is also measured on it when it exists.
DEMO_WAREHOUSE = ROOT / "data" / "warehouse" / "liq.duckdb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=1_600_000, help="aggTrades in the ingest day")
    parser.add_argument("--series-trades", type=int, default=200_000,
                        help=f"aggTrades per day of the {SERIES_DAYS}-day series (refresh, query, heatmap, RSS)")
    parser.add_argument("--backfill-days", type=int, default=30)
    parser.add_argument("--series-days", type=int, default=SERIES_DAYS)
    parser.add_argument("--parquet-trades", type=int, default=200_000,
                        help="aggTrades per symbol-day of the Parquet-vs-DuckDB backfill")
    parser.add_argument("--scale-days", type=int, default=8, help="days simulated at --trades for the refresh at scale")
    parser.add_argument("--volatile-trades", type=int, default=8_000_000, help="aggTrades in the volatile day")
    parser.add_argument("--year-days", type=int, default=30,
                        help="days of the year section measured (projected to 365 when fewer)")
    parser.add_argument("--year-trades", type=int, default=1_600_000, help="aggTrades per day of the year section")
    parser.add_argument("--year-chunk-days", type=int, default=10, help="days per backfill run of the year section")
    parser.add_argument("--queries", type=int, default=200, help="`liq heatmap --at` calls per query measurement")
    parser.add_argument("--cold-runs", type=int, default=7, help="fresh processes per cold-start command")
    parser.add_argument("--load3-warm-up", type=float, default=180,
                        help="longest wait (s) for CPU burners to lift the 1-minute load average to 3 before the "
                        "'load3' section measures (its rows say MISS, not at load 3, if it did not get there)")
    parser.add_argument("--only", nargs="*", choices=SECTIONS,
                        help="run only these sections ('load' repeats cold, query, heatmap and serve with a concurrent "
                        "run; 'load3' repeats cold, query and serve beside the concurrent run and CPU burners at load average 3, "
                        "bench/answers.py)")
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "bench")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "bench"))
    import scale

    wanted = set(args.only or SECTIONS)
    results = {"machine": machine(), "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    t0 = time.perf_counter()

    def run(name, fn, *a) -> bool:
        """Run one section; an exception is recorded as the section's failure, and the others still run."""
        print(f"[bench] {name} ... (load average {os.getloadavg()[0]:.1f})", flush=True)
        t = time.perf_counter()
        try:
            results[name] = {**fn(*a), "load_average_1m": round(os.getloadavg()[0], 2)}
        except Exception as e:  # noqa: BLE001  (any failure: reported in the table, never a traceback)
            results[name] = {"failed": f"{type(e).__name__}: {e}"}
            print(f"[bench] {name} FAILED: {results[name]['failed'][:4000]}", flush=True)
            return False
        print(f"[bench] {name}: {json.dumps(results[name])} ({time.perf_counter() - t:.0f} s)", flush=True)
        return True

    if "ingest" in wanted:
        run("ingest", bench_ingest, args.work, args.trades)
    if "refresh_at_scale" in wanted:
        run("refresh_at_scale", bench_refresh_at_scale, args.work, args.trades, args.scale_days)
    if "serve" in wanted and DEMO_WAREHOUSE.exists():
        run("serve_demo", bench_serve, DEMO_WAREHOUSE, "demo")
    if wanted & {"series", "refresh", "cold", "query", "heatmap", "ofi", "serve", "load", "load3"}:
        holder = {}

        def series_section():
            holder["series"], info = prepare_series(args.work, args.series_trades, args.backfill_days, args.series_days)
            return info

        if run("series", series_section):
            series = holder["series"]
            if "refresh" in wanted:
                run("refresh", bench_refresh, series)
            if "cold" in wanted:
                run("cold", bench_cold, series, args.cold_runs)
            if "query" in wanted:
                run("query", bench_query, series, args.backfill_days, args.queries)
            if "heatmap" in wanted:
                run("heatmap", bench_heatmap, series, args.backfill_days)
            if "ofi" in wanted:
                run("ofi", bench_ofi, series, min(30, args.backfill_days))
            if "serve" in wanted:
                run("serve", bench_serve, series.db, f"{args.backfill_days}-day bench series")
            if "load" in wanted:
                run("cold_loaded", loaded, lambda s, _days: bench_cold(s, args.cold_runs), series, args.backfill_days)
                run("query_loaded", loaded, bench_query, series, args.backfill_days, args.queries)
                run("heatmap_loaded", loaded, bench_heatmap, series, args.backfill_days)
                run("serve_loaded", loaded, lambda s, days: bench_serve(s.db, f"{days}-day bench series"), series,
                    args.backfill_days)
            if "load3" in wanted:  # beside the concurrent run and CPU burners, at a 1-minute load average ≥ 3
                from answers import AtLoad

                with (ConcurrentMaterialization(series, _concurrent_first(series, args.backfill_days)) as writer,
                      AtLoad(writer, args.load3_warm_up) as load):
                    print(f"[bench] load3: load average {load_average_text()} after {load.warm_up_s} s of warm-up "
                          f"({load.burners} burners)", flush=True)
                    run("cold_load3", load.measure, bench_cold, series, args.cold_runs)
                    run("query_load3", load.measure, bench_query, series, args.backfill_days, args.queries)
                    run("serve_load3", load.measure, bench_serve, series.db, f"{args.backfill_days}-day bench series")
    if "parquet" in wanted:
        run("parquet", bench_parquet, args.work, args.parquet_trades)
    if "volatile" in wanted:
        run("volatile", lambda: scale.bench_volatile(Series(args.work, args.volatile_trades, 2), args.volatile_trades))
    if "year" in wanted:
        run("year", lambda: scale.bench_year(Series(args.work, args.year_trades, args.year_days), args.year_chunk_days))
    results["total_s"] = round(time.perf_counter() - t0, 1)
    rows = with_load(table(results), results)
    print()
    print_table(rows)
    m = results["machine"]
    print(f"\n{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}, DuckDB {m['duckdb']}; "
          f"load average at start {results['load_average_at_start']}; total {results['total_s']} s")
    results["markdown"] = markdown_table(rows)
    args.results.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.results}")
    failed = [name for name, r in results.items() if isinstance(r, dict) and "failed" in r]
    if failed:
        print(f"failed sections: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
