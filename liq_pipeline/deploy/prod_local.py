"""The production-shaped Dagster instance on one machine: Postgres storage, the daemon, the queued run
coordinator, run monitoring, a user-code gRPC server and the webserver, all on 127.0.0.1.

The instance file is `deploy/k8s/dagster.yaml` (the production one) with three local changes, made by
`local_instance_config` and nothing else: the run launcher is `LocalRunLauncher` (Dagster's default
launcher plus a worker health check, liq_pipeline/deploy/run_launcher.py) instead of `K8sRunLauncher`; the
Postgres port is the local server's; the run limits fit one machine and run monitoring polls every few
seconds. Postgres is a private cluster under `<root>/postgres` (initdb on first start; password
authentication; TCP on 127.0.0.1 only, no Unix socket). Runs use `LIQ_STORAGE=parquet` unless the
environment says otherwise: a DuckDB file has one writer, Parquet partitions have none.

    python -m liq_pipeline.deploy.prod_local serve    # start everything, stop everything on Ctrl-C (make prod-local)
    python -m liq_pipeline.deploy.prod_local start    # start in the background and return
    python -m liq_pipeline.deploy.prod_local stop     # stop what `start` started (make prod-local-stop)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_INSTANCE = REPO / "deploy" / "k8s" / "dagster.yaml"
LOCATION = "liq_pipeline"
PG_USER = "dagster"
PG_DB = "dagster"
#: Runs at once on one machine (each run uses up to LIQ_MAX_CONCURRENT processes); above one on purpose.
DEFAULT_MAX_RUNS = 4
#: Run monitoring poll interval on one machine: a dead run is failed within seconds, the query is cheap.
LOCAL_MONITORING_POLL_S = 5
#: Daemons that must report healthy before the instance counts as started.
REQUIRED_DAEMONS = ("SCHEDULER", "SENSOR", "BACKFILL", "QUEUED_RUN_COORDINATOR", "MONITORING")


class ProdLocalError(RuntimeError):
    """The local production instance cannot start or stop; the message says why and what to do."""


# ------------------------------------------------------------------------------------- configuration
def local_instance_config(production: dict, *, pg_port: int, max_concurrent_runs: int) -> dict:
    """The production instance config with the local launcher, port, run limits and monitoring poll."""
    if max_concurrent_runs < 2:
        raise ValueError("the production-shaped instance runs several runs at once: max_concurrent_runs must be >= 2")
    config = copy.deepcopy(production)
    config["run_launcher"] = {"module": "liq_pipeline.deploy.run_launcher", "class": "LocalRunLauncher"}
    config["storage"]["postgres"]["postgres_db"]["port"] = pg_port
    limits = config["run_coordinator"]["config"]
    limits["max_concurrent_runs"] = max_concurrent_runs
    for limit in limits.get("tag_concurrency_limits", []):
        limit["limit"] = min(limit["limit"], max_concurrent_runs)
    config["run_monitoring"] = {**config.get("run_monitoring", {}), "enabled": True,
                                "poll_interval_seconds": LOCAL_MONITORING_POLL_S,
                                "max_resume_run_attempts": 0}  # the default launcher cannot resume a run
    return config


def postgres_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres: from PATH, else `pg_config --bindir`; None if none."""
    candidates = []
    if shutil.which("pg_ctl"):
        candidates.append(Path(shutil.which("pg_ctl")).resolve().parent)
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ Postgres
@dataclass
class Postgres:
    """A private Postgres cluster in `home` (data/, postgres.log, password), serving 127.0.0.1:`port`."""

    home: Path
    bindir: Path
    port: int = 0
    #: The unprivileged account the server runs as when we are root (Postgres refuses to run as root).
    user: str | None = None

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def password_file(self) -> Path:
        return self.home.parent / "pg-password"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        # A session of its own: the server started by pg_ctl must not get the terminal's Ctrl-C (serve stops it).
        out = subprocess.run([str(self.bindir / args[0]), *args[1:]], capture_output=True, text=True,
                             timeout=timeout, user=self.user, cwd=self.home, check=False, start_new_session=True)
        if out.returncode != 0:
            raise ProdLocalError(f"{args[0]} failed ({out.returncode}): {(out.stderr or out.stdout).strip()[-1500:]}")
        return out

    def init(self) -> None:
        """initdb on first use: superuser `dagster` with a generated password, scram auth, 127.0.0.1 only."""
        if os.geteuid() == 0:
            self.user = _unprivileged_user()
            _check_reachable(self.home.parent, self.user)
        self.home.mkdir(parents=True, exist_ok=True)
        if self.user:
            shutil.chown(self.home, self.user, self.user)
        if (self.data / "PG_VERSION").exists():
            return
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24))
            self.password_file.chmod(0o600)
        pwfile = self.home / ".initdb-password"
        pwfile.write_text(self.password_file.read_text())
        if self.user:
            shutil.chown(pwfile, self.user, self.user)
        try:
            self._run("initdb", "-D", str(self.data), "-U", PG_USER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                      "-E", "UTF8", "--locale=C", "--no-instructions")
        finally:
            pwfile.unlink(missing_ok=True)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# liq_pipeline prod-local: TCP on loopback only, no Unix socket\n"
                       "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n")

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def start(self) -> None:
        self.init()
        self.port = self.port or free_port()
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.home / "postgres.log"), "-w", "-t", "60",
                  "-o", f"-p {self.port}", "start")
        self._create_database()

    def _create_database(self) -> None:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user=PG_USER, password=self.password,
                               dbname="postgres", connect_timeout=10)
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DB])
                if cur.fetchone() is None:
                    cur.execute(f"CREATE DATABASE {PG_DB}")
        finally:
            con.close()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            if os.geteuid() == 0:
                self.user = _unprivileged_user()
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ProdLocalError("Postgres refuses to run as root and there is no 'postgres' or 'nobody' account to run it as")


def _check_reachable(folder: Path, user: str) -> None:
    """The server's account must be able to enter every folder above its cluster."""
    uid = pwd.getpwnam(user).pw_uid
    for parent in [folder.resolve(), *folder.resolve().parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid != uid and not st.st_mode & 0o001:
            raise ProdLocalError(f"the Postgres account {user!r} cannot enter {parent} (mode {oct(st.st_mode & 0o777)}); "
                                 "put the prod-local folder where every parent folder is searchable")


# ---------------------------------------------------------------------------------------- the stack
@dataclass
class ProdLocal:
    """Everything under `root`: postgres/, dagster_home/ (dagster.yaml, workspace.yaml), logs/, state.json."""

    root: Path
    web_port: int = 3000
    max_concurrent_runs: int = DEFAULT_MAX_RUNS
    #: Variables set for every process, over `base_env` (default: this process's environment).
    env: dict[str, str] = field(default_factory=dict)
    base_env: dict[str, str] | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    postgres: Postgres | None = None

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def process_env(self) -> dict[str, str]:
        assert self.postgres is not None
        env = {**(os.environ if self.base_env is None else self.base_env), **self.env}
        env.update(DAGSTER_HOME=str(self.home.resolve()), DAGSTER_PG_HOST="127.0.0.1", DAGSTER_PG_USERNAME=PG_USER,
                   DAGSTER_PG_PASSWORD=self.postgres.password, DAGSTER_PG_DB=PG_DB)
        env.setdefault("LIQ_STORAGE", "parquet")
        return env

    def start(self, timeout_s: float = 240, daemon: bool = True) -> None:
        """Postgres, the code server, the daemon and the webserver; ready when the webserver has loaded the code
        location and every daemon reports healthy. With `daemon=False` the daemon is left for `start_daemon`:
        work submitted before it starts (a backfill) is picked up by its first iteration, not up to 30 s later
        (the backfill daemon's interval, fixed in Dagster)."""
        if self.state_file.exists():
            raise ProdLocalError(f"{self.state_file} exists: the instance is running or was not stopped; "
                                 "run `make prod-local-stop` first")
        bindir = postgres_bindir()
        if bindir is None:
            raise ProdLocalError("no Postgres server found: put initdb, pg_ctl and postgres on PATH "
                                 "(e.g. apt-get install postgresql) or make pg_config --bindir point at them")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        self.postgres = Postgres(self.root / "postgres", bindir)
        self.postgres.start()
        self._save_state()
        try:
            self._write_instance()
            code_port = free_port()
            env = self.process_env()
            bin_dir = Path(sys.executable).parent
            self._spawn("code_server", [str(bin_dir / "dagster"), "api", "grpc", "-m", "liq_pipeline.definitions",
                                        "-h", "127.0.0.1", "-p", str(code_port), "--location-name", LOCATION], env)
            _wait_for_port(code_port, timeout_s, self.procs["code_server"], self.root / "logs" / "code_server.log")
            (self.home / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
                "host": "127.0.0.1", "port": code_port, "location_name": LOCATION}}]}))
            if daemon:
                self._spawn_daemon()
            self._spawn("webserver", [str(bin_dir / "dagster-webserver"), "-w", str(self.home / "workspace.yaml"),
                                      "-h", "127.0.0.1", "-p", str(self.web_port)], env)
            self._save_state()
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def start_daemon(self, timeout_s: float = 240) -> None:
        """The daemon of an instance started with `daemon=False` (nothing if it runs), until it reports healthy."""
        if "daemon" not in self.procs:
            try:
                self._spawn_daemon()
                self._save_state()
            except BaseException:
                self.stop()
                raise
        self.wait_ready(timeout_s)

    def _spawn_daemon(self) -> None:
        self._spawn("daemon", [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w",
                               str(self.home / "workspace.yaml")], self.process_env())

    def _write_instance(self) -> None:
        production = yaml.safe_load(PRODUCTION_INSTANCE.read_text())
        config = local_instance_config(production, pg_port=self.postgres.port,
                                       max_concurrent_runs=self.max_concurrent_runs)
        self.home.mkdir(parents=True, exist_ok=True)
        header = (f"# Written by liq_pipeline/deploy/prod_local.py from {PRODUCTION_INSTANCE.relative_to(REPO)}: the same "
                  "instance with the local run launcher, port, run limits and monitoring poll.\n")
        (self.home / "dagster.yaml").write_text(header + yaml.safe_dump(config, sort_keys=False))

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = open(self.root / "logs" / f"{name}.log", "ab")
        try:
            self.procs[name] = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()

    def _save_state(self) -> None:
        state = {"web_port": self.web_port, "pids": {n: p.pid for n, p in self.procs.items()},
                 "pg_port": self.postgres.port if self.postgres else None,
                 "pg_bindir": str(self.postgres.bindir) if self.postgres else None}
        self.state_file.write_text(json.dumps(state, indent=1))

    def graphql(self, query: str, variables: dict | None = None, timeout_s: float = 60) -> dict:
        import requests

        r = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout_s)
        if r.status_code == 400:  # a query the schema rejects: say why
            raise RuntimeError(f"GraphQL refused the query: {r.text[:2000]}")
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    def wait_ready(self, timeout_s: float) -> None:
        """Until the webserver has loaded the code location and the daemons report healthy (if it runs)."""
        import requests

        query = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } }
          instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise ProdLocalError(f"{name} exited with {proc.returncode}; see {self.root / 'logs' / (name + '.log')}")
            try:
                data = self.graphql(query, timeout_s=10)
                entries = data["workspaceOrError"]["locationEntries"]
                healthy = {d["daemonType"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"] if d["healthy"]}
                missing = [d for d in REQUIRED_DAEMONS if d not in healthy] if "daemon" in self.procs else []
                if entries and all(e["loadStatus"] == "LOADED" for e in entries) and not missing:
                    return
                last = f"locations {entries}, daemons not yet healthy: {missing}"
            except (requests.RequestException, KeyError, TypeError, ValueError, RuntimeError) as e:
                last = str(e)
            time.sleep(1)
        raise ProdLocalError(f"the instance was not ready after {timeout_s:.0f} s ({last}); logs in {self.root / 'logs'}")

    def stop(self) -> None:
        """Webserver, daemon, code server (SIGTERM to each process group, SIGKILL after 30 s), then Postgres."""
        pids = {n: p.pid for n, p in self.procs.items()}
        if not pids and self.state_file.exists():
            pids = json.loads(self.state_file.read_text()).get("pids", {})
        for name in ("webserver", "daemon", "code_server"):
            if name in pids:
                _stop_group(pids[name], self.procs.get(name))
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        pg = self.postgres or (Postgres(self.root / "postgres", Path(state["pg_bindir"]))
                               if state.get("pg_bindir") else None)
        if pg is not None:
            pg.stop()
        self.procs.clear()
        self.state_file.unlink(missing_ok=True)


def _stop_group(pid: int, proc: subprocess.Popen | None, grace_s: float = 30) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        if proc is None and not _alive(pid):
            break
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)  # whatever is left of the group (run workers of the code server)
    except ProcessLookupError:
        pass
    if proc is not None:
        proc.wait(10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ProdLocalError(f"the code server exited with {proc.returncode}; see {log}")
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise ProdLocalError(f"the code server did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s; see {log}")


# ------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m liq_pipeline.deploy.prod_local", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("serve", "start", "stop"))
    parser.add_argument("--root", default=str(Path(os.environ.get("LIQ_DATA_DIR") or "data") / "prod-local"),
                        help="folder for Postgres, the instance and the logs (default <LIQ_DATA_DIR>/prod-local)")
    parser.add_argument("--port", type=int, default=3000, help="webserver port on 127.0.0.1 (default 3000)")
    parser.add_argument("--max-runs", type=int, default=DEFAULT_MAX_RUNS, help="runs at once (default 4)")
    args = parser.parse_args(argv)
    stack = ProdLocal(Path(args.root).resolve(), web_port=args.port, max_concurrent_runs=args.max_runs)
    try:
        if args.command == "stop":
            if not stack.state_file.exists():
                print(f"nothing to stop ({stack.state_file} does not exist)")
                return 0
            stack.stop()
            print("stopped")
            return 0
        stack.start()
    except ProdLocalError as e:
        print(f"prod-local: {e}", file=sys.stderr)
        return 2
    print(f"Dagster UI on {stack.url} (Postgres 127.0.0.1:{stack.postgres.port}, instance {stack.home}, "
          f"logs {stack.root / 'logs'}, LIQ_STORAGE={stack.process_env()['LIQ_STORAGE']})", flush=True)
    if args.command == "start":
        print("stop it with `make prod-local-stop`")
        return 0
    stopping = []
    handler = lambda *_: stopping.append(True)  # noqa: E731
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    print("Ctrl-C stops the webserver, the daemon, the code server and Postgres", flush=True)
    try:
        while not stopping:
            dead = [n for n, p in stack.procs.items() if p.poll() is not None]
            if dead:
                print(f"prod-local: {', '.join(dead)} exited; stopping the rest", file=sys.stderr)
                break
            time.sleep(0.5)
    finally:
        stack.stop()
        print("stopped", flush=True)
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
