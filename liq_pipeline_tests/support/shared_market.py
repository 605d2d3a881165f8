"""One small simulated market per test run: 4 days of BTCUSDT simulated and materialized through the real
Definitions (raw + truth, model, heatmap with their checks, then January's validation report), built once and
shared by every test that only reads it; a test that writes works on a copy (`copy_market`).

Under pytest-xdist every worker asks for it; the first builds it under a file lock in the run's common
temporary folder and the others wait and reuse it. The shared folder is made read-only once built, so a test
that writes to it by mistake fails instead of changing what the others read."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

SYMBOL = "BTCUSDT"
FIRST, LAST = dt.date(2026, 1, 1), dt.date(2026, 1, 4)
DAYS = (LAST - FIRST).days + 1
SIM = {"seed": 3, "trades_per_day": 5_000, "positions_per_day": 400}
DONE = "market.json"  # written last: the market is complete


@dataclass(frozen=True)
class Market:
    root: Path  # LIQ_DATA_DIR of the market: archive-sim/, warehouse/liq.duckdb, reports/
    summary: dict  # what the simulator wrote: rows per file kind, liquidations
    checks: dict  # per materialized stage, {"asset/check": passed}

    @property
    def db(self) -> Path:
        return self.root / "warehouse" / "liq.duckdb"

    def env(self):
        """A MonkeyPatch (undo it when done) pointing the pipeline at this market."""
        from liq_pipeline_tests.support.simulated_market import simulated_market_env

        return simulated_market_env(self.root, SYMBOL, FIRST)


def range_tags() -> dict[str, str]:
    from liq_pipeline.apps.demo import _range_tags

    return _range_tags(SYMBOL, FIRST, LAST)


def materializer(selection_assets=None):
    """run(selection, **kw): one materialization through the real Definitions on an ephemeral instance, over
    the market the environment points at; fails the test on a failed run."""
    import dagster as dg

    from liq_pipeline.apps.demo import QUIET
    from liq_pipeline.definitions import build_definitions

    defs = build_definitions()
    assets = list(defs.assets) + list(defs.asset_checks)
    resources = dict(defs.resources)
    instance = dg.DagsterInstance.ephemeral()

    def run(selection, **kw):
        kw.setdefault("tags", range_tags())
        result = dg.materialize(assets, selection=selection, instance=instance, resources=resources,
                                run_config=QUIET, raise_on_error=False, **kw)
        assert result.success, selection
        return result

    return run


def build(root: Path) -> Market:
    """Simulate and materialize the market into `root` (which must be empty or absent)."""
    import dagster as dg

    from liq_pipeline.sim import SimConfig, simulate

    root.mkdir(parents=True, exist_ok=True)
    market = Market(root, {}, {})
    mp = market.env()
    try:
        summary = simulate(SimConfig(symbols=(SYMBOL,), start=FIRST, days=DAYS, out_dir=root / "archive-sim", **SIM))
        run = materializer()
        checks = {}
        for stage, selection, kw in [
                ("raw", dg.AssetSelection.groups("raw", "truth"), {}),
                ("model", dg.AssetSelection.groups("model"), {}),
                ("heatmap", dg.AssetSelection.groups("heatmap"), {}),
                ("validation", dg.AssetSelection.groups("validation"),
                 {"tags": {}, "partition_key": FIRST.replace(day=1).isoformat()})]:
            result = run(selection, **kw)
            checks[stage] = {f"{e.asset_key.to_user_string()}/{e.check_name}": e.passed
                             for e in result.get_asset_check_evaluations()}
    finally:
        mp.undo()
    sym = summary.symbols[SYMBOL]
    done = {"summary": {"rows": dict(sym.rows), "liquidations": int(sym.liquidations)}, "checks": checks}
    (root / DONE).write_text(json.dumps(done, indent=1, sort_keys=True))
    return load(root)


def load(root: Path) -> Market:
    done = json.loads((root / DONE).read_text())
    return Market(root, done["summary"], done["checks"])


def make_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def shared(folder: Path) -> Market:
    """The market in `folder`/market, built by the first caller (under a lock shared by xdist workers)."""
    folder.mkdir(parents=True, exist_ok=True)
    root = folder / "market"
    with open(folder / "market.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (root / DONE).exists():
                return load(root)
            if root.exists():  # a build that died half-way
                make_writable(root)
                shutil.rmtree(root)
            market = build(root)
            make_read_only(root)
            return market
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        with contextlib.suppress(FileNotFoundError):
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def copy_market(market: Market, dest: Path) -> Market:
    """A private, writable copy of the market at `dest` (which must not exist yet)."""
    shutil.copytree(market.root, dest)
    make_writable(dest)
    return Market(dest, market.summary, market.checks)
