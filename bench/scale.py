"""Issue 29's full-size sections of `make bench`: a volatile day (8 M aggTrades in one daily file) and a year of
history of one symbol (DuckDB with one writer, and Parquet partitions with two processes), each with wall
time, CPU time (user + system of every process involved) and peak memory.

Both run on a simulated series of their own (cached under the bench's work folder like the others): the
volatile day is the second of a two-day series at 8 M aggTrades a day (the first builds the book the refresh
evolves); the year is `days` days at 1.6 M aggTrades a day, backfilled in chunks of `chunk_days` (raw →
model → heatmap), and projected to 365 days from the per-day cost of its last chunk when fewer days are
measured (said so in its row).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import duckdb
from parquet import children_cpu, compare_tables  # bench/ is on sys.path (run.py puts it there)

ROOT = Path(__file__).resolve().parent.parent
YEAR = 365


def ingest_vs_limit(zip_path: Path, day: dt.date, symbol: str, repeat: int = 3) -> dict:
    """One aggTrades zip: the pipeline's ingest (checksum, unzip, parse, checks, the partition write in one
    transaction) against the limit, unzip + DuckDB `read_csv` straight into a table of a file database, both in
    this process (best of `repeat`; the CPU time of that run, all threads, beside it)."""
    from liq_pipeline.market.archive import ArchiveClient
    from liq_pipeline.market.formats import ArchiveFile
    from liq_pipeline.market.ingest import ingest_partition
    from liq_pipeline.market.parsers import agg_trades_checked_select, read_csv_sql

    spec = ArchiveFile("aggTrades", symbol, day)
    mirror = zip_path.parents[len(Path(spec.relpath).parts) - 1]

    def limit():
        with tempfile.TemporaryDirectory() as tmp, duckdb.connect(str(Path(tmp) / "l.duckdb")) as con:
            with zipfile.ZipFile(zip_path) as z:
                csv = Path(z.extract(spec.csv_name, tmp))
            con.execute(f"CREATE TABLE t AS SELECT * FROM {read_csv_sql(csv, 'aggTrades')}")

    def pipeline():
        with tempfile.TemporaryDirectory() as tmp, duckdb.connect(str(Path(tmp) / "p.duckdb")) as con:
            client = ArchiveClient(mirror_dir=mirror, cache_dir=Path(tmp) / "cache")
            ingest_partition(con, client, "raw.agg_trades", symbol, day, spec,
                             lambda csv, only_day: agg_trades_checked_select(csv, symbol, day, only_day))

    def best(fn):
        runs = []
        for _ in range(repeat):
            t, c = time.perf_counter(), time.process_time()
            fn()
            runs.append((time.perf_counter() - t, time.process_time() - c))
        return min(runs)

    (limit_s, limit_cpu), (pipeline_s, pipeline_cpu) = best(limit), best(pipeline)
    with zipfile.ZipFile(zip_path) as z:
        info = z.getinfo(spec.csv_name)
        with z.open(info) as f:
            lines, last = 0, b"\n"
            for block in iter(lambda: f.read(1 << 24), b""):
                lines, last = lines + block.count(b"\n"), block[-1:]
    rows = lines + (last != b"\n") - 1  # the header line
    return {"rows": rows, "zip_mb": round(zip_path.stat().st_size / 2**20, 1),
            "csv_mb": round(info.file_size / 2**20, 1), "limit_s": round(limit_s, 3),
            "limit_cpu_s": round(limit_cpu, 3), "pipeline_s": round(pipeline_s, 3),
            "cpu_seconds": round(pipeline_cpu, 3), "ratio": round(pipeline_s / limit_s, 2)}


def bench_volatile(series, trades_per_day: int) -> dict:
    """A volatile day, `trades_per_day` aggTrades in one daily file (day 2 of a two-day series): the ingest
    against the unzip + read limit; the raw stage of the day (every raw table) and its daily refresh
    (volume profile → levels, window 7 days; best of 3 in a fresh process) each in a fresh process, with
    their peak RSS. Day 1 is backfilled through every stage first, so the refresh evolves a book."""
    days = series.days
    info = {"trades_per_day": trades_per_day, "simulate_s": round(series.simulate(), 1)}
    shutil.rmtree(series.db.parent, ignore_errors=True)
    series.job("backfill", 1, days - 1)
    cpu0, t = children_cpu(), time.perf_counter()
    raw = series.job("raw", days, days)
    raw_cpu = children_cpu() - cpu0
    refresh = series.job("refresh", days, days, repeat=3, LIQ_WINDOW_DAYS="7")
    from liq_pipeline.market.formats import ArchiveFile

    zip_path = series.sim / ArchiveFile("aggTrades", series.symbol, series.day(days)).relpath
    ingest = ingest_vs_limit(zip_path, series.day(days), series.symbol)
    return {**info, "ingest": ingest,
            "raw_stage": {"seconds": round(raw["seconds"], 2), "process_cpu_s": round(raw_cpu, 2),
                          "wall_with_start_s": round(time.perf_counter() - t, 1),
                          "peak_rss_mb": round(raw["peak_rss_mb"])},
            "refresh": {"window_days": 7, "seconds": round(refresh["seconds"], 3),
                        "cpu_seconds": round(refresh["cpu_seconds"], 3), "peak_rss_mb": round(refresh["peak_rss_mb"])},
            "peak_rss_mb": round(max(raw["peak_rss_mb"], refresh["peak_rss_mb"]))}


# ---------------------------------------------------------------------------------------------- a year
def _chunks(days: int, chunk_days: int) -> list[tuple[int, int]]:
    return [(a, min(a + chunk_days - 1, days)) for a in range(1, days + 1, chunk_days)]


def _raw_ahead(chunks: list[tuple[int, int]], days: int) -> list[tuple[int, int]]:
    """The raw days ingested with (or before) each chunk's model: one day ahead, because the model of a day
    reads the funding settled at its end instant, which the archive files under the next day; so every day is
    modelled with the same raw tables in both storages, as in a backfill that ingests everything first."""
    return [(1 if i == 0 else a + 1, min(b + 1, days)) for i, (a, b) in enumerate(chunks)]


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20 if path.exists() else 0.0


def _storage_env(series, data: Path, storage: str) -> dict[str, str]:
    return {"LIQ_DATA_DIR": str(data), "LIQ_SIM_DIR": str(series.sim), "LIQ_STORAGE": storage}


def _duckdb_year(series, chunks: list[tuple[int, int]]) -> dict:
    """One writer: every chunk raw → model → heatmap in one process, the chunks one after the other, the
    warehouse held open for the whole process as `liq demo` runs its chain (warehouse/resource.held_open): the
    partitions' connections join the open file instead of opening it and checkpointing it at every close
    (about 20 a day); the same SQL on the same data, so the same tables (compared with Parquet's below)."""
    data = series.data / "year-duckdb"
    shutil.rmtree(data, ignore_errors=True)
    env = _storage_env(series, data, "duckdb")
    per_chunk, cpu, rss, sizes = [], [], [], []
    step_cpu: dict[str, float] = {}
    cpu0, t0 = children_cpu(), time.perf_counter()
    for (a, b), raw in zip(chunks, _raw_ahead(chunks, series.days), strict=True):
        t = time.perf_counter()
        r = (series.job("backfill", a, b, raw=raw, held_open=True, **env) if raw[0] <= raw[1]
             else series.job("model_heatmap", a, b, held_open=True, **env))
        per_chunk.append(time.perf_counter() - t)
        cpu.append(children_cpu() - cpu0 - sum(cpu))
        rss.append(r["peak_rss_mb"])
        for step, c in r.get("cpu_seconds_per_step", {}).items():
            step_cpu[step] = step_cpu.get(step, 0.0) + c
        sizes.append(_dir_mb(data / "warehouse"))
    return {"wall_s": time.perf_counter() - t0, "cpu_s": children_cpu() - cpu0, "chunk_wall_s": per_chunk,
            "chunk_cpu_s": cpu, "held_open": True,
            "stage_cpu_s": {k: round(v, 1) for k, v in step_cpu.items()},
            "peak_rss_mb": max(rss), "storage_mb": sizes,
            "warehouse": data / "warehouse" / "liq.duckdb"}


def _parquet_year(series, chunks: list[tuple[int, int]]) -> dict:
    """Parquet partitions, two processes: the raw tables of chunk i+1 are ingested while chunk i runs
    model → heatmap (the model's days follow each other: a day's book starts from the day before)."""
    data = series.data / "year-parquet"
    shutil.rmtree(data, ignore_errors=True)
    env = _storage_env(series, data, "parquet")
    raw = _raw_ahead(chunks, series.days)
    rounds, cpu, rss, pair_rss, sizes = [], [], [], [], []
    cpu0, t0 = children_cpu(), time.perf_counter()
    t = time.perf_counter()
    rss.append(series.job("raw", *raw[0], **env)["peak_rss_mb"])
    rounds.append(time.perf_counter() - t)
    cpu.append(children_cpu() - cpu0)
    for i, chunk in enumerate(chunks):
        t = time.perf_counter()
        procs = [series.start_job("model_heatmap", *chunk, **env)]
        if i + 1 < len(chunks) and raw[i + 1][0] <= raw[i + 1][1]:
            procs.append(series.start_job("raw", *raw[i + 1], **env))
        out = [series.finish_job(p) for p in procs]
        rss.extend(r["peak_rss_mb"] for r in out)
        pair_rss.append(sum(r["peak_rss_mb"] for r in out))
        rounds.append(time.perf_counter() - t)
        cpu.append(children_cpu() - cpu0 - sum(cpu))
        sizes.append(_dir_mb(data / "parquet"))
    return {"wall_s": time.perf_counter() - t0, "cpu_s": children_cpu() - cpu0, "round_wall_s": rounds[1:],
            "round_cpu_s": cpu[1:],
            "first_raw_s": rounds[0], "peak_rss_mb": max(rss), "peak_rss_two_processes_mb": max(pair_rss),
            "storage_mb": sizes, "root": data / "parquet"}


#: Tables compared between the two storages: raw ones by an order-free checksum of every column (tens of
#: millions of rows: a join would cost more than the backfill), model ones row by row within TOLERANCE.
RAW_CHECKSUMS = {
    "raw.agg_trades": "symbol, day, agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time, "
                      "is_buyer_maker",
    "raw.klines": "symbol, day, open_time, open, high, low, close, volume, trade_count",
    "raw.mark_price_klines": "symbol, day, open_time, open, high, low, close",
}
MODEL_TABLES = {
    "model.liquidation_levels": (("symbol", "day", "variant", "side", "bin_id"), "{t}.notional_usd"),
    "model.liquidation_heatmap": (("symbol", "day", "variant", "snapshot_time", "side", "bin_id"), "{t}.notional_usd"),
}


def compare_storages(warehouse: Path, root: Path, days: list[dt.date]) -> dict:
    """The DuckDB warehouse against the Parquet root: raw tables by (rows, checksum), model tables row by row
    (one day at a time, so the join stays small)."""
    from liq_pipeline.warehouse import parquet

    pq = parquet.connect(str(root), read_only=True)
    try:
        pq.execute(f"ATTACH '{warehouse}' AS duck (READ_ONLY)")
        out: dict[str, dict] = {}
        for table, cols in RAW_CHECKSUMS.items():
            sums = [pq.execute(f"SELECT count(*), sum(hash({cols})::HUGEINT) FROM {src}").fetchone()
                    for src in (f"duck.{table}", table)]
            out[table] = {"rows": [int(s[0]) for s in sums], "same": sums[0] == sums[1]}
        for table, (keys, value) in MODEL_TABLES.items():
            per_day = [compare_tables(pq, f"(SELECT * FROM duck.{table} WHERE day = DATE '{d}')",
                                      f"(SELECT * FROM {table} WHERE day = DATE '{d}')", keys, value) for d in days]
            out[table] = {"rows": [sum(r["rows"][i] for r in per_day) for i in (0, 1)],
                          "unmatched_rows": sum(r["unmatched_rows"] for r in per_day),
                          "max_rel_diff": max(r["max_rel_diff"] for r in per_day),
                          "same": all(r["same"] for r in per_day)}
    finally:
        pq.execute("DETACH DATABASE IF EXISTS duck")  # the views' DuckDB outlives the connection (warehouse/parquet.py)
        pq.close()
    return out


def _project(measured: float, per_chunk: list[float], chunk_days: list[int], days: int) -> float:
    """A year's worth: what was measured plus the remaining days at the per-day rate of the last chunks (time,
    CPU or the storage they added): the larger rate of the last two, since the last one runs without a
    next chunk's raw tables beside it. The book is nearly full by then (cohorts merge by day after 48 h and
    expire after 30 days), so its cost per day no longer grows much."""
    rate = max(x / n for x, n in zip(per_chunk[-2:], chunk_days[-2:], strict=True))
    return measured + (YEAR - days) * rate if days < YEAR else measured


def bench_year(series, chunk_days: int = 10) -> dict:
    """One symbol's history, `series.days` days at `series.trades_per_day` aggTrades a day, backfilled through
    every stage: DuckDB (one writer, chunk after chunk) and Parquet (two processes, ingest of the next chunk
    beside the model of this one); wall time, CPU time, peak RSS, storage size; the tables compared; a
    projection to 365 days when fewer were measured."""
    days = series.days
    info = {"days": days, "trades_per_day": series.trades_per_day, "chunk_days": chunk_days,
            "simulate_s": round(series.simulate(), 1)}
    chunks = _chunks(days, chunk_days)
    sizes = [b - a + 1 for a, b in chunks]
    out = {**info, "projected": days < YEAR}
    duck = _duckdb_year(series, chunks)
    pq = _parquet_year(series, chunks)
    for name, r, key in (("duckdb", duck, "chunk"), ("parquet", pq, "round")):
        stored = r["storage_mb"]
        grew = [stored[0], *(b - a for a, b in zip(stored[:-1], stored[1:], strict=True))]
        out[name] = {"wall_s": round(r["wall_s"], 1), "cpu_s": round(r["cpu_s"], 1),
                     "peak_rss_mb": round(r["peak_rss_mb"]), "storage_mb": round(stored[-1], 1),
                     "year_wall_min": round(_project(r["wall_s"], r[f"{key}_wall_s"], sizes, days) / 60, 1),
                     "year_cpu_min": round(_project(r["cpu_s"], r[f"{key}_cpu_s"], sizes, days) / 60, 1),
                     "year_storage_gb": round(_project(stored[-1], grew, sizes, days) / 1024, 2)}
    for name, r, key in (("duckdb", duck, "chunk"), ("parquet", pq, "round")):
        out[name][f"{key}_wall_s"] = [round(x, 1) for x in r[f"{key}_wall_s"]]
        out[name][f"{key}_cpu_s"] = [round(x, 1) for x in r[f"{key}_cpu_s"]]
    out["duckdb"]["held_open"] = duck["held_open"]
    out["duckdb"]["stage_cpu_s"] = duck["stage_cpu_s"]  # the jobs' own CPU (main process) per stage, all chunks
    out["duckdb"]["cpu_s_per_day"] = round(duck["cpu_s"] / days, 2)
    out["parquet"]["cpu_s_per_day"] = round(pq["cpu_s"] / days, 2)
    out["parquet"]["first_raw_s"] = round(pq["first_raw_s"], 1)
    out["parquet"]["peak_rss_two_processes_mb"] = round(pq["peak_rss_two_processes_mb"])
    tables = compare_storages(duck["warehouse"], pq["root"], [series.day(n) for n in range(1, days + 1)])
    out["tables"] = tables
    out["same_results"] = all(t["same"] for t in tables.values())
    out["max_rel_diff"] = max(t.get("max_rel_diff", 0.0) for t in tables.values())
    return out

