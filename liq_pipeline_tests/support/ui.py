"""Helpers of the browser test: a small simulated warehouse, `dagster dev` on a free port, GraphQL polling.

Kept apart from the test so the steps read plainly there, and usable by hand:
`python -m liq_pipeline_tests.support.ui /tmp/e2e` prepares a folder and serves the UI until Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
SYMBOL = "BTCUSDT"
FIRST = dt.date(2026, 1, 1)
DAYS = 3  # the test backfills the heatmap of days 2 and 3; day 1 is the state they start from
BROWSER_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def environment(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQ_")}
    env.update(DAGSTER_HOME=str(root / "dagster_home"), LIQ_DATA_DIR=str(root / "data"), LIQ_SYMBOLS=SYMBOL,
               LIQ_START_DATE=FIRST.isoformat())
    return env


def prepare(root: Path) -> dict[str, str]:
    """Simulate DAYS days of one symbol and materialize raw → model for them (not the heatmap: the test
    backfills that from the UI), recorded in the instance the UI will use."""
    env = environment(root)
    home = Path(env["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    script = f"""
import datetime as dt, warnings
warnings.filterwarnings("ignore")
import dagster as dg
from liq_pipeline.sim import SimConfig, simulate
from liq_pipeline import config
from liq_pipeline.definitions import build_definitions
from liq_pipeline.apps.demo import QUIET, _range_tags
first = dt.date.fromisoformat("{FIRST.isoformat()}")
last = first + dt.timedelta(days={DAYS - 1})
simulate(SimConfig(symbols=("{SYMBOL}",), start=first, days={DAYS}, seed=11, out_dir=config.sim_archive_dir(),
                   trades_per_day=4000, positions_per_day=300))
defs = build_definitions()
for groups in (("raw",), ("model",)):
    r = dg.materialize(list(defs.assets) + list(defs.asset_checks), selection=dg.AssetSelection.groups(*groups),
                       instance=dg.DagsterInstance.get(), resources=dict(defs.resources),
                       tags=_range_tags("{SYMBOL}", first, last), run_config=QUIET, raise_on_error=False)
    assert r.success, groups
"""
    subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, check=True, timeout=600)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DagsterUI:
    """`dagster dev` in its own process group; stop() terminates the whole group."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w")
        dagster = str(Path(sys.executable).with_name("dagster"))
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "serve.py"), dagster, "dev", "-w", "workspace.yaml",
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.proc.returncode}; see {self.log.name}")
            try:
                entries = self.graphql(query)["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    return
            except (requests.RequestException, KeyError, TypeError, ValueError):
                pass
            time.sleep(1)
        raise TimeoutError(f"the Dagster UI did not load its code location in {timeout_s} s")

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        r = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


if __name__ == "__main__":
    root = Path(sys.argv[1])
    ui = DagsterUI(prepare(root), root / "dagster.log")
    try:
        ui.wait_ready()
        print(ui.url, flush=True)
        ui.proc.wait()
    finally:
        ui.stop()
