"""`make demo` / `liq demo`: simulate a market, materialize every asset on it, print where to look.

Runs are recorded in the Dagster instance at $DAGSTER_HOME (./.dagster_home by default), so `make ui`
shows the same materializations, pictures and check results afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
import warnings
from pathlib import Path

from liq_pipeline import config


def _ensure_dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or Path(".dagster_home").resolve())
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and Path("dagster.yaml").exists():
        shutil.copy("dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _simulation_current(out_dir: Path, symbols: tuple[str, ...], start: dt.date, days: int, seed: int) -> bool:
    manifest = out_dir / "simulation.json"
    if not manifest.exists():
        return False
    cfg = json.loads(manifest.read_text()).get("config", {})
    return (tuple(cfg.get("symbols", ())) == symbols and cfg.get("start") == start.isoformat()
            and cfg.get("days") == days and cfg.get("seed") == seed)


def _range_tags(symbol: str, first: dt.date, last: dt.date) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": f"{first.isoformat()}|{symbol}",
        "dagster/asset_partition_range_end": f"{last.isoformat()}|{symbol}",
    }


#: Days at the start of the simulated range used only to warm up the volume profile.
WARM_UP_DAYS = 7
#: Dagster's per-event DEBUG lines would bury the demo's summary; warnings and errors still print.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_demo(days: int = 45, seed: int = 7, model_days: int | None = None) -> int:
    """Simulate `days` days for the configured symbols, ingest everything, model the last `model_days`
    (default: all but the first week), validate every month touched, print where to look."""
    _ensure_dagster_home()
    warnings.filterwarnings("ignore", message=".*BackfillPolic.*")
    import dagster as dg

    from liq_pipeline.market.simulator import SimConfig, simulate

    symbols = tuple(config.configured_symbols())
    start = config.configured_start_date()
    last = start + dt.timedelta(days=days - 1)
    model_days = max(1, days - WARM_UP_DAYS - 1) if model_days is None else model_days
    out_dir = config.sim_archive_dir()
    t0 = time.time()
    if _simulation_current(out_dir, symbols, start, days, seed):
        print(f"simulated archive up to date: {out_dir}")
    else:
        print(f"simulating {', '.join(symbols)} × {days} days (seed {seed}) into {out_dir} ...")
        simulate(SimConfig(symbols=symbols, start=start, days=days, seed=seed, out_dir=out_dir), progress=print)
        print(f"  simulated in {time.time() - t0:.0f} s")

    config.warehouse_path().parent.mkdir(parents=True, exist_ok=True)
    from liq_pipeline.definitions import defs

    instance = dg.DagsterInstance.get()
    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    resources = dict(defs.resources or {})
    first_model = max(start, last - dt.timedelta(days=model_days))  # one extra day: the heatmap starts from D-1
    stages = [
        ("raw data and ground truth", dg.AssetSelection.groups("raw", "truth"), start),
        ("daily volume profiles", dg.AssetSelection.assets("volume_profile_daily"), start),
        ("baseline, OFI, distributions, levels", dg.AssetSelection.groups("model") - dg.AssetSelection.assets("volume_profile_daily"), first_model),
        ("heatmap and zones", dg.AssetSelection.groups("heatmap"), first_model + dt.timedelta(days=1)),
    ]
    for label, selection, first in stages:
        for symbol in symbols:
            t = time.time()
            result = dg.materialize(assets, selection=selection, instance=instance, resources=resources,
                                    tags=_range_tags(symbol, first, last), run_config=QUIET, raise_on_error=False)
            state = "ok" if result.success else "FAILED"
            print(f"{label:<40} {symbol} {first}…{last}: {state} ({time.time() - t:.1f} s)")
            if not result.success:
                print("see the run in the Dagster UI (make ui) for the error")
                return 1
    months = sorted({(first_model + dt.timedelta(days=i)).replace(day=1) for i in range((last - first_model).days + 1)})
    for month in months:
        t = time.time()
        result = dg.materialize(assets, selection=dg.AssetSelection.groups("validation"), instance=instance,
                                resources=resources, partition_key=month.isoformat(), run_config=QUIET,
                                raise_on_error=False)
        print(f"{'validation report':<40} {month:%Y-%m}: {'ok' if result.success else 'FAILED'} ({time.time() - t:.1f} s)")
    _print_summary(symbols, last, months)
    print(f"\ndemo finished in {time.time() - t0:.0f} s; `make ui` opens the Dagster UI on http://127.0.0.1:3000")
    return 0


def _validation_rows(report: dict) -> list[str]:
    """The yardstick table of a monthly report, one line per symbol and variant (validation.report)."""
    from liq_pipeline.validation.report import TERMINAL_COLUMNS, yardstick_text

    return yardstick_text(report, TERMINAL_COLUMNS)


def _print_summary(symbols: tuple[str, ...], day: dt.date, months: list[dt.date]) -> None:
    from liq_pipeline.cli import connect_read_only, format_top_zones

    print(f"\nreports in {config.reports_dir().resolve()}:")
    for path in sorted(config.reports_dir().glob(f"*{day.isoformat()}*")):
        print(f"  {path.name}")
    for month in months:
        path = config.reports_dir() / f"validation-{month:%Y-%m}.json"
        if not path.exists():
            continue
        print(f"  {path.name}")
        print(f"\nvalidation {month:%Y-%m}: overlap with the simulator's true liquidation map, the ceiling an "
              "oracle reaches (every position known but its leverage) and the ratio, the bin-free distance; "
              "backtest Spearman per (hour, side) of the map and of three trivial baselines, the map's partial ρ "
              "given range and excursion, top-10 % notional recall, lift of ρ over the strongest baseline")
        print("\n".join(_validation_rows(json.loads(path.read_text()))))
    with connect_read_only() as con:
        for symbol in symbols:
            print(f"\n{symbol} {day}: top liquidation zones (hybrid)")
            print(format_top_zones(con, symbol, day, "hybrid", n=3))
