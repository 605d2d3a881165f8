"""One benchmark job in its own process (so its peak RSS and its settings are its own): materialize a stage
of the pipeline for one symbol over a day range through the real Definitions, print a JSON line.

    python bench/job.py --stage backfill --symbol BTCUSDT --first 2026-01-01 --last 2026-01-30

Settings come from the environment (LIQ_DATA_DIR, LIQ_WINDOW_DAYS, ...), as for every liq_pipeline process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import time
import warnings

STAGES = {
    # stage: asset groups / names, in run order
    "raw": [("groups", ("raw",))],
    "profiles": [("assets", ("volume_profile_daily",))],
    "backfill": [("groups", ("raw",)), ("groups", ("model",)), ("groups", ("heatmap",))],
    "heatmap": [("groups", ("heatmap",))],
    "model_heatmap": [("groups", ("model",)), ("groups", ("heatmap",))],
    "refresh": [("assets", ("volume_profile_daily", "volume_profile_baseline", "ofi_bins", "flow_book",
                            "position_distribution", "liquidation_levels"))],
}


def peak_rss_mb() -> float:
    """This process's peak resident set size (MB) since it started or since `reset_peak_rss`.

    Linux's VmHWM of /proc/self/status: the high-water mark of this process's own memory. Not getrusage's
    ru_maxrss: a process started by Python's subprocess (vfork + exec) inherits its parent's high-water mark
    there, so a bench job started by a bench process that had simulated a series in memory reported the
    simulator's peak, not its own (issue 29: the 2,078 MB of the 30-day backfill)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Start a new high-water mark from the current RSS (Linux ≥ 4.0; elsewhere a no-op)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", choices=sorted(STAGES), required=True)
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--first", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--last", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--raw-first", type=dt.date.fromisoformat, help="the raw group's first day (default --first)")
    parser.add_argument("--raw-last", type=dt.date.fromisoformat,
                        help="the raw group's last day (default --last; the model of a day reads the funding settled "
                             "at its end, which is stored with the next day)")
    parser.add_argument("--repeat", type=int, default=1, help="time the stage this many times, keep the best")
    parser.add_argument("--held-open", action="store_true",
                        help="hold the DuckDB warehouse open for the whole job, as `make demo` does "
                        "(warehouse/resource.held_open): its connections join it instead of opening and checkpointing "
                        "the file per partition; nothing to hold in Parquet mode")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import contextlib

    import dagster as dg

    from liq_pipeline import config
    from liq_pipeline.apps.demo import QUIET, _range_tags
    from liq_pipeline.definitions import build_definitions
    from liq_pipeline.warehouse.resource import held_open

    defs = build_definitions()
    run = {"assets": list(defs.assets) + list(defs.asset_checks), "resources": dict(defs.resources),
           "instance": dg.DagsterInstance.ephemeral(), "run_config": QUIET, "raise_on_error": False}
    tags = _range_tags(args.symbol, args.first, args.last)
    raw_tags = _range_tags(args.symbol, args.raw_first or args.first, args.raw_last or args.last)
    with held_open(str(config.warehouse_path())) if args.held_open and config.storage() == "duckdb" \
            else contextlib.nullcontext():
        return _stages(args, run, tags, raw_tags)


def _stages(args, run: dict, tags: dict, raw_tags: dict) -> int:
    """Materialize the stage's asset groups in order, `args.repeat` times; print the JSON line."""
    import dagster as dg

    timings, cpu = [], []
    job_peak, stage_peak = peak_rss_mb(), {}  # before the first stage: imports and Definitions
    stage_s: dict[str, float] = {}
    stage_cpu: dict[str, float] = {}
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for kind, names in STAGES[args.stage]:
            reset_peak_rss()
            t1, c1 = time.perf_counter(), time.process_time()
            selection = dg.AssetSelection.groups(*names) if kind == "groups" else dg.AssetSelection.assets(*names)
            result = dg.materialize(selection=selection, tags=raw_tags if names == ("raw",) else tags, **run)
            if not result.success:
                print(json.dumps({"ok": False, "stage": args.stage, "failed": str(names)}))
                return 1
            name = "+".join(names)
            stage_s[name] = round(stage_s.get(name, 0.0) + time.perf_counter() - t1, 3)  # summed over repeats
            stage_cpu[name] = round(stage_cpu.get(name, 0.0) + time.process_time() - c1, 3)
            stage_peak[name] = round(max(stage_peak.get(name, 0.0), peak_rss_mb()))
            job_peak = max(job_peak, stage_peak[name])
        timings.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    # CPU time (all threads of this process) of the fastest run: the work itself, which a busy machine does not
    # inflate the way it inflates the wall time.
    print(json.dumps({"ok": True, "stage": args.stage, "seconds": min(timings), "all_seconds": timings,
                      "cpu_seconds": cpu[timings.index(min(timings))], "peak_rss_mb": job_peak,
                      "peak_rss_mb_per_step": stage_peak, "seconds_per_step": stage_s, "cpu_seconds_per_step": stage_cpu,
                      "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
