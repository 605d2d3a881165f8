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
    "refresh": [("assets", ("volume_profile_daily", "volume_profile_baseline", "ofi_bins", "flow_book",
                            "position_distribution", "liquidation_levels"))],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", choices=sorted(STAGES), required=True)
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--first", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--last", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--repeat", type=int, default=1, help="time the stage this many times, keep the best")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import dagster as dg

    from liq_pipeline.apps.demo import QUIET, _range_tags
    from liq_pipeline.definitions import build_definitions

    defs = build_definitions()
    assets = list(defs.assets) + list(defs.asset_checks)
    resources = dict(defs.resources)
    instance = dg.DagsterInstance.ephemeral()
    tags = _range_tags(args.symbol, args.first, args.last)
    timings, cpu = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for kind, names in STAGES[args.stage]:
            selection = dg.AssetSelection.groups(*names) if kind == "groups" else dg.AssetSelection.assets(*names)
            result = dg.materialize(assets, selection=selection, instance=instance, resources=resources,
                                    tags=tags, run_config=QUIET, raise_on_error=False)
            if not result.success:
                print(json.dumps({"ok": False, "stage": args.stage, "failed": str(names)}))
                return 1
        timings.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    # CPU time (all threads of this process) of the fastest run: the work itself, which a busy machine does not
    # inflate the way it inflates the wall time.
    print(json.dumps({"ok": True, "stage": args.stage, "seconds": min(timings), "all_seconds": timings,
                      "cpu_seconds": cpu[timings.index(min(timings))],
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
