"""The production-shaped instance, run for real on loopback: a private Postgres holding runs, events and
schedules, the daemon with the queued run coordinator (2 runs at once) and run monitoring, a user-code gRPC
server and the webserver (liq_pipeline/deploy/prod_local.py). Nothing is mocked; everything goes through Dagster's
GraphQL API as the UI does.

- A backfill in Parquet mode of 3 days, the raw assets of 2 symbols and the whole chain of one, runs as
  concurrent range runs (one symbol's runs beside the other's) and every run succeeds. The chain on one symbol
  only: each symbol's chain is 3 to 6 more runs (each a run worker and a fork server importing the definitions,
  and their step processes); the chain of both symbols cost the test twice the CPU (docs/development.md#time).
- Its tables equal those of a DuckDB-mode run of the same simulated market (floats within 1e-9 relative;
  the largest difference of every table is printed).
- The daily schedule evaluates through the code server; the archive sensor, started, is ticked by the daemon.
- Two `dagster asset materialize` runs that fill both run slots are killed with SIGKILL while they wait on
  a download: run monitoring marks them failed and the run queued behind them starts and succeeds.

Skipped where no Postgres server binary is installed.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import pytest

from liq_pipeline.deploy.prod_local import ProdLocal, free_port, postgres_bindir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(postgres_bindir() is None,
                       reason="no Postgres server binary (initdb, pg_ctl, postgres on PATH or under pg_config --bindir)"),
]

SYMBOLS = ("BTCUSDT", "ETHUSDT")
#: The symbols whose whole chain the backfill covers; the others get their raw assets only.
CHAIN_SYMBOLS = SYMBOLS[:1]
FIRST, DAYS = dt.date(2026, 1, 1), 3
LAST = FIRST + dt.timedelta(days=DAYS - 1)
LOCATION = {"repositoryLocationName": "liq_pipeline", "repositoryName": "__repository__"}
#: Every symbol × day asset of the chain raw → model → heatmap (truth is simulator-only, validation monthly).
RAW_ASSETS = ("agg_trades", "klines", "mark_price_klines", "open_interest", "funding_rates", "premium_index_klines")
ASSETS = (*RAW_ASSETS, "volume_profile_daily", "volume_profile_baseline", "ofi_bins", "flow_book", "position_distribution",
          "liquidation_levels", "liquidation_heatmap", "liquidation_zones")
TABLES = ("raw.agg_trades", "raw.klines", "raw.mark_price_klines", "raw.open_interest", "raw.funding_rates",
          "raw.premium_index_klines", "model.volume_profile_daily", "model.volume_profile_baseline",
          "model.ofi_bins", "model.flow_book", "model.flow_parameters", "model.position_distribution",
          "model.liquidation_levels", "model.liquidation_heatmap", "model.liquidation_zones")
#: Floats of the two storage modes may differ in the last bits (sums in another order), nothing more.
REL_TOL = ABS_TOL = 1e-9
IN_PROGRESS = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")

REFERENCE = f"""
import datetime as dt, warnings
warnings.filterwarnings("ignore")
import dagster as dg
from liq_pipeline import config
from liq_pipeline.definitions import build_definitions
from liq_pipeline.apps.demo import QUIET, _range_tags
from liq_pipeline.sim import SimConfig, simulate
first, last = dt.date.fromisoformat("{FIRST}"), dt.date.fromisoformat("{LAST}")
simulate(SimConfig(symbols={SYMBOLS!r}, start=first, days={DAYS}, seed=19, out_dir=config.sim_archive_dir(),
                   trades_per_day=1500, positions_per_day=150))
print("simulated", flush=True)
defs = build_definitions()
assets = list(defs.assets) + list(defs.asset_checks)
instance = dg.DagsterInstance.ephemeral()
for symbol in {SYMBOLS!r}:
    for groups in (("raw",), ("model",), ("heatmap",)) if symbol in {CHAIN_SYMBOLS!r} else (("raw",),):
        r = dg.materialize(assets, selection=dg.AssetSelection.groups(*groups), instance=instance,
                           resources=dict(defs.resources), tags=_range_tags(symbol, first, last), run_config=QUIET,
                           raise_on_error=False)
        assert r.success, (symbol, groups)
"""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("LIQ_", "DAGSTER_"))}


@pytest.fixture(scope="module")
def world():
    # Postgres runs as an unprivileged account when we are root: the folder must be reachable by it, which
    # pytest's private tmp folders are not.
    root = Path(tempfile.mkdtemp(prefix="liq-prod-"))
    root.chmod(0o711)
    data = root / "data"
    env = {"LIQ_DATA_DIR": str(data), "LIQ_SYMBOLS": ",".join(SYMBOLS), "LIQ_START_DATE": FIRST.isoformat(),
           "LIQ_STORAGE": "parquet", "LIQ_MAX_CONCURRENT": "2",
           "LIQ_HEATMAP_STEP_MINUTES": "60"}  # hourly snapshots: a quarter of the default rows, the same code
    # The simulated market and the DuckDB-mode reference, while the instance starts and (after the simulation)
    # while the backfill runs.
    ref_env = {**_clean_env(), **env, "LIQ_STORAGE": "duckdb", "LIQ_WAREHOUSE": str(root / "duck" / "liq.duckdb"),
               "LIQ_SIM_DIR": str(data / "archive-sim")}
    reference = subprocess.Popen([sys.executable, "-c", REFERENCE], env=ref_env, cwd=root, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    simulated = threading.Event()

    def drain():
        for line in reference.stdout:
            output.append(line)
            if line.strip() == "simulated":
                simulated.set()
        simulated.set()  # the output ended: the process too (a failure before the simulation's end shows below)

    threading.Thread(target=drain, daemon=True).start()
    # The daemon starts once the backfill is submitted (`backfill`, `daemon`): its first iteration picks the
    # backfill up, instead of a tick up to 30 s after the submission (the backfill daemon's fixed interval).
    stack = ProdLocal(root / "prod-local", web_port=free_port(), max_concurrent_runs=2, env=env, base_env=_clean_env())
    started = time.monotonic()
    try:
        stack.start(daemon=False)
        print(f"instance ready in {time.monotonic() - started:.0f} s")
        assert simulated.wait(timeout=600) and "simulated\n" in output, "".join(output)[-3000:]
        print(f"market simulated in {time.monotonic() - started:.0f} s")
        yield {"stack": stack, "root": root, "parquet": data / "parquet", "duck": root / "duck" / "liq.duckdb",
               "reference": reference, "reference_output": output, "started": started}
    finally:
        if reference.poll() is None:
            reference.kill()
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(world):
    """The instance with its daemon running and every daemon healthy."""
    world["stack"].start_daemon()
    return world


@pytest.fixture(scope="module")
def reference(world):
    """The DuckDB-mode warehouse of the same market, once its run has finished."""
    process = world["reference"]
    process.wait(timeout=900)
    assert process.returncode == 0, "".join(world["reference_output"])[-3000:]
    print(f"DuckDB reference done {time.monotonic() - world['started']:.0f} s after the start")
    return world["duck"]


# ------------------------------------------------------------------------------------------- GraphQL
BACKFILL = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
BACKFILL_STATE = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill {
  status runs(limit: 20) { runId status startTime endTime tags { key value } } } } }"""
RUN = """query($id: ID!) { runOrError(runId: $id) { ... on Run { runId status startTime endTime
  eventConnection(afterCursor: null) { events { __typename ... on MessageEvent { message } } } } } }"""
RUNS = """query($s: [RunStatus!]) { runsOrError(filter: {statuses: $s}) { ... on Runs { results { runId status } } } }"""
LAUNCH_RUN = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } ... on RunConfigValidationInvalid { errors { message } } } }"""


def _wait(what: str, probe, timeout_s: float, every_s: float = 1.0, state=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s" + (f"; last state: {state()}" if state else ""))


def _run(stack: ProdLocal, run_id: str) -> dict:
    return stack.graphql(RUN, {"id": run_id})["runOrError"]


def _messages(run: dict) -> list[str]:
    return [e.get("message") or "" for e in run["eventConnection"]["events"]]


# --------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def backfill(world):
    stack = world["stack"]
    launched_at = time.time()
    by_asset = [{"assetKey": {"path": [a]}, "partitions": {"ranges": [
        {"start": f"{FIRST}|{s}", "end": f"{LAST}|{s}"} for s in (SYMBOLS if a in RAW_ASSETS else CHAIN_SYMBOLS)]}}
        for a in ASSETS]
    launched = stack.graphql(BACKFILL, {"p": {"partitionsByAssets": by_asset, "fromFailure": False}})
    backfill_id = launched["launchPartitionBackfill"].get("backfillId")
    assert backfill_id, launched
    stack.start_daemon()  # after the submission: its first backfill iteration requests the first runs

    def state():
        return stack.graphql(BACKFILL_STATE, {"id": backfill_id})["partitionBackfillOrError"]

    def finished():
        now = state()
        done = now["status"] not in ("REQUESTED", "CANCELING") and not any(r["status"] in IN_PROGRESS for r in now["runs"])
        return now if done else None

    result = _wait("the backfill", finished, timeout_s=1200, every_s=2, state=state)
    # Each run's start and end, in s from the submission: runs start at the backfill daemon's iterations, 30 s
    # apart, each requesting what the runs finished by then made possible.
    print(f"backfill of {DAYS} days ({len(SYMBOLS)} symbols' raw assets, {len(CHAIN_SYMBOLS)} symbol's chain): "
          f"{time.time() - launched_at:.0f} s, runs (start-end) "
          + ", ".join(f"{r['startTime'] - launched_at:.0f}-{r['endTime'] - launched_at:.0f} s"
                      for r in sorted(result["runs"], key=lambda r: r["startTime"] or 0) if r["endTime"]))
    return result


def test_backfill_runs_as_concurrent_runs_that_all_succeed(backfill):
    runs = backfill["runs"]
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert runs and all(r["status"] == "SUCCESS" for r in runs), runs
    # Every run covers one symbol's three days in order (single-run backfill policy). The chain is split
    # where an asset depends on its own previous day (flow_book, liquidation_heatmap): Dagster runs those
    # in range runs of their own after their parents, so the chain's symbol gets more runs than the other ...
    start = {r["runId"]: t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/asset_partition_range_start"}
    end = {r["runId"]: t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/asset_partition_range_end"}
    assert len(start) == len(runs) and set(start.values()) == {f"{FIRST}|{s}" for s in SYMBOLS}, runs
    assert all(end[run_id] == start[run_id].replace(str(FIRST), str(LAST)) for run_id in start), runs
    per_symbol = {s: [r for r in runs if start[r["runId"]] == f"{FIRST}|{s}"] for s in SYMBOLS}
    assert len(per_symbol[CHAIN_SYMBOLS[0]]) > len(per_symbol[SYMBOLS[1]]) >= 1, per_symbol
    # ... and the symbols ran at the same time: a run of one started before a run of the other ended.
    first, second = (per_symbol[s] for s in SYMBOLS[:2])
    assert any(a["startTime"] < b["endTime"] and b["startTime"] < a["endTime"] for a in first for b in second), runs


def _float_columns(con, table: str) -> list[str]:
    kinds = con.execute(f"DESCRIBE {table}").fetchall()
    return [name for name, kind, *_ in kinds if kind in ("DOUBLE", "FLOAT", "REAL") or kind.startswith("DECIMAL")]


def compare_tables(duck_path: Path, parquet_root: Path, table: str) -> dict:
    """Rows of `table` in both warehouses, paired in a stable order: row counts, rows whose non-float values
    differ, and the largest absolute and relative difference of every float column."""
    from liq_pipeline.warehouse import parquet

    pq = parquet.connect(str(parquet_root), read_only=True)
    duck = duckdb.connect(str(duck_path), read_only=True)
    try:
        cols = [c for c, _ in parquet.columns(table) if c != "ingested_at"]
        floats = set(_float_columns(pq, table))
        order = ", ".join([c for c in cols if c not in floats] + [f"round({c}, 6)" for c in cols if c in floats])
        query = f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}"
        rows = {"duckdb": duck.execute(query).fetchall(), "parquet": pq.execute(query).fetchall()}
    finally:
        pq.close()
        duck.close()
    report = {"rows": {k: len(v) for k, v in rows.items()}, "key_mismatches": 0,
              "max_abs": dict.fromkeys(sorted(floats), 0.0), "max_rel": dict.fromkeys(sorted(floats), 0.0),
              "outside_tolerance": 0}
    for d, p in zip(rows["duckdb"], rows["parquet"], strict=False):
        bad = False
        for name, x, y in zip(cols, d, p, strict=True):
            if name in floats and x is not None and y is not None:
                diff = abs(x - y)
                report["max_abs"][name] = max(report["max_abs"][name], diff)
                report["max_rel"][name] = max(report["max_rel"][name], diff / max(abs(x), abs(y), 1e-300))
                bad |= not math.isclose(x, y, rel_tol=REL_TOL, abs_tol=ABS_TOL)
            elif x != y:
                report["key_mismatches"] += 1
                bad = True
                break
        report["outside_tolerance"] += bad
    return report


@pytest.mark.parametrize("table", TABLES)
def test_parquet_backfill_tables_equal_the_duckdb_run(world, backfill, reference, table):
    report = compare_tables(reference, world["parquet"], table)
    worst = max(report["max_rel"].items(), key=lambda kv: kv[1], default=("-", 0.0))
    print(f"{table}: rows {report['rows']}, largest relative difference {worst[1]:.3g} ({worst[0]}), "
          f"largest absolute {max(report['max_abs'].values(), default=0.0):.3g}, "
          f"rows outside tolerance {report['outside_tolerance']}")
    assert report["rows"]["parquet"] == report["rows"]["duckdb"] > 0, report
    assert report["outside_tolerance"] == 0, report


def test_postgres_listens_on_loopback_only_and_holds_the_instance(world):
    import psycopg2

    stack = world["stack"]
    con = psycopg2.connect(host="127.0.0.1", port=stack.postgres.port, user="dagster", password=stack.postgres.password,
                           dbname="dagster", connect_timeout=10)
    try:
        with con.cursor() as cur:
            cur.execute("SHOW listen_addresses")
            assert cur.fetchone()[0] == "127.0.0.1"
            cur.execute("SHOW unix_socket_directories")
            assert cur.fetchone()[0] == ""
            cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('runs', 'event_logs', 'jobs')")
            assert cur.fetchone()[0] == 3  # run, event-log and schedule storage
    finally:
        con.close()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host="127.0.0.1", port=stack.postgres.port, user="dagster", password="wrong",
                         dbname="dagster", connect_timeout=10)


def test_schedule_evaluates_and_the_archive_sensor_ticks(daemon):
    stack = daemon["stack"]
    tick_time = dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time(0, 30), tzinfo=dt.UTC).timestamp()
    dry = stack.graphql("""mutation($s: ScheduleSelector!, $t: Float) { scheduleDryRun(selectorData: $s, timestamp: $t) {
      __typename ... on DryRunInstigationTick { evaluationResult { skipReason error { message }
        runRequests { runKey tags { key value } } } } ... on PythonError { message } } }""",
                        {"s": {**LOCATION, "scheduleName": "daily_refresh_schedule"}, "t": tick_time})["scheduleDryRun"]
    result = dry["evaluationResult"]
    assert result["error"] is None, result
    assert sorted(r["runKey"] for r in result["runRequests"]) == sorted(f"daily:{LAST}:{s}" for s in SYMBOLS)

    selector = {**LOCATION, "sensorName": "archive_day_published_sensor"}
    started = stack.graphql("""mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename
      ... on Sensor { sensorState { status } } ... on PythonError { message } } }""", {"s": selector})["startSensor"]
    assert started["__typename"] == "Sensor" and started["sensorState"]["status"] == "RUNNING", started
    ticks_query = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor {
      sensorState { ticks(limit: 5) { status skipReason error { message } } } } } }"""
    try:
        def evaluated():  # a finished tick (an unfinished one reads STARTED)
            ticks = stack.graphql(ticks_query, {"s": selector})["sensorOrError"]["sensorState"]["ticks"]
            return ticks if ticks and ticks[0]["status"] != "STARTED" else None

        ticks = _wait("a tick of the archive sensor by the daemon", evaluated, timeout_s=120)
    finally:
        stack.graphql("""mutation($s: SensorSelector!) { resetSensor(sensorSelector: $s) { __typename } }""",
                      {"s": selector})  # back to its default status: stopped
    # No partition was filled from REST, so the sensor's honest answer is a skip with its reason.
    assert ticks[0]["status"] == "SKIPPED", ticks
    assert "filled from REST" in ticks[0]["skipReason"], ticks


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers: a download that hangs."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        for conn in self.held:
            conn.close()
        self.sock.close()


def test_killed_runs_are_failed_by_run_monitoring_and_the_queue_moves_on(daemon):
    world = daemon
    stack = world["stack"]
    _wait("no run in progress", lambda: not stack.graphql(RUNS, {"s": list(IN_PROGRESS)})["runsOrError"]["results"],
          timeout_s=1200, every_s=2)  # both run slots free (after the backfill when the whole file runs)
    server = SilentServer()
    env = {**stack.process_env(), "LIQ_SOURCE": "binance", "LIQ_ARCHIVE_URL": f"http://127.0.0.1:{server.port}"}
    before = {r["runId"] for r in stack.graphql(RUNS)["runsOrError"]["results"]}
    workers = []
    try:
        # Two runs fill both run slots, each waiting on a download that never comes.
        for symbol in SYMBOLS:
            workers.append(subprocess.Popen(
                [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "liq_pipeline.definitions",
                 "--select", "agg_trades", "--partition", f"{LAST}|{symbol}"],
                env=env, cwd=world["root"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))

        def both_downloading():
            runs = [r for r in stack.graphql(RUNS, {"s": ["STARTED"]})["runsOrError"]["results"] if r["runId"] not in before]
            stepping = [r for r in runs if "ExecutionStepStartEvent" in
                        {e["__typename"] for e in _run(stack, r["runId"])["eventConnection"]["events"]}]
            return [r["runId"] for r in stepping] if len(stepping) == 2 else None

        dead = _wait("two runs started by `dagster asset materialize`", both_downloading, timeout_s=180)
        # A run submitted now waits in the queue behind them.
        launched = stack.graphql(LAUNCH_RUN, {"p": {
            "selector": {**LOCATION, "pipelineName": "__ASSET_JOB", "assetSelection": [{"path": ["klines"]}]},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": f"{LAST}|{SYMBOLS[0]}"},
                                           {"key": "dagster/partition/date", "value": LAST.isoformat()},
                                           {"key": "dagster/partition/symbol", "value": SYMBOLS[0]}]}}})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        queued_id = launched["run"]["runId"]
        assert _run(stack, queued_id)["status"] == "QUEUED"
        for worker in workers:  # the worker and its step processes, as an OOM kill or a lost machine would
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)

        def failed(run_id):
            run = _run(stack, run_id)
            return run if run["status"] == "FAILURE" else None

        for run_id in dead:
            run = _wait(f"run {run_id} marked failed", lambda run_id=run_id: failed(run_id), timeout_s=120)
            assert any("no longer exists (killed or crashed)" in m for m in _messages(run)), _messages(run)[-5:]
        queued = _wait("the queued run", lambda: (r := _run(stack, queued_id))["status"] not in IN_PROGRESS and r,
                       timeout_s=240, every_s=2)
        assert queued["status"] == "SUCCESS", _messages(queued)[-5:]
        dead_end = max(_run(stack, run_id)["endTime"] for run_id in dead)
        assert queued["startTime"] >= dead_end  # it started only once the dead runs were failed
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
        server.close()
