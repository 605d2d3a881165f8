"""Per-test wall and CPU time, every process a test starts included (docs/development.md#time).

A pytest plugin, off unless asked for: `LIQ_TEST_CPU_LOG=times.jsonl pytest -p
liq_pipeline_tests.support.cpu_log ...`. Each pytest process (each xdist worker) moves itself into a cgroup
of its own (cgroup v1 `cpuacct`, root only), so the CPU of the servers, browsers and step processes its tests
start is counted even when they leave the process tree (a daemonized Postgres, a forkserver's children);
without that permission the worker's own CPU and its waited-for children (`getrusage`) are logged instead.
One JSON line per test: node id, worker, start and end (epoch s), wall s, CPU s (setup, call and teardown:
a module or session fixture counts in the test that built it), whether it is marked slow.
`python -m liq_pipeline_tests.support.cpu_log times.jsonl` prints CPU per file, the costliest tests and each
worker's busy span."""

from __future__ import annotations

import atexit
import json
import os
import resource
import time
from pathlib import Path

import pytest

CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def _own_cpuacct() -> Path:
    """This process's cpuacct cgroup folder (the hierarchy's root when none is named)."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "cpuacct" in controllers.split(","):
                return CPUACCT / path.lstrip("/")
    except (OSError, ValueError):
        pass
    return CPUACCT


def _remove_stale(parent: Path) -> None:
    """Remove the empty groups of earlier runs whose pytest process is gone."""
    for group in parent.glob("liq-test-*-*"):
        pid = group.name.rsplit("-", 1)[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            try:
                group.rmdir()
            except OSError:  # a process of that run still in it
                pass


class _Meter:
    def __init__(self) -> None:
        self.group: Path | None = None
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.parent = _own_cpuacct()
        if os.access(self.parent / "cgroup.procs", os.W_OK):
            _remove_stale(self.parent)
            # A child of the cgroup the process is in, so whatever accounts for that one still sees this CPU.
            group = self.parent / f"liq-test-{self.worker}-{os.getpid()}"
            try:
                group.mkdir(exist_ok=True)
                (group / "cgroup.procs").write_text(str(os.getpid()))
                self.group = group
                atexit.register(self.close)  # xdist workers may exit without pytest_unconfigure
            except OSError:  # no permission after all: fall back to getrusage
                self.group = None

    def cpu_s(self) -> float:
        if self.group is not None:
            return int((self.group / "cpuacct.usage").read_text()) / 1e9
        own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def close(self) -> None:
        if self.group is None or not self.group.exists():
            return
        (self.parent / "cgroup.procs").write_text(str(os.getpid()))
        try:  # processes still running in it (a leaked server) keep it: say so rather than fail
            self.group.rmdir()
        except OSError as error:
            print(f"cpu_log: {self.group} left in place: {error}")


_meter: _Meter | None = None
_log: Path | None = None


def pytest_configure(config):
    global _log
    target = os.environ.get("LIQ_TEST_CPU_LOG")
    if target:
        _log = Path(target)
        _log.parent.mkdir(parents=True, exist_ok=True)


def pytest_unconfigure(config):
    if _meter is not None:
        _meter.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    global _meter
    if _log is None:
        yield
        return
    if _meter is None:  # made by the process that runs tests (not by xdist's controller, which runs none)
        _meter = _Meter()
    start, cpu = time.time(), _meter.cpu_s()
    yield
    end = time.time()
    row = {"test": item.nodeid, "worker": _meter.worker, "start": round(start, 3), "end": round(end, 3),
           "wall_s": round(end - start, 3), "cpu_s": round(_meter.cpu_s() - cpu, 3),
           "slow": item.get_closest_marker("slow") is not None}
    with open(_log, "a") as out:
        out.write(json.dumps(row) + "\n")


def summary(log: Path, top: int = 30) -> str:
    """The log as text: CPU per file, the `top` tests by CPU, and each worker's busy span."""
    rows = []
    for line in log.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # an empty line, or one cut short (a full disk, a killed worker)
            continue
    files: dict[str, list[float]] = {}
    for row in rows:
        wall_cpu = files.setdefault(row["test"].split("::", 1)[0], [0.0, 0.0, 0])
        wall_cpu[0] += row["wall_s"]
        wall_cpu[1] += row["cpu_s"]
        wall_cpu[2] += 1
    fast = [r for r in rows if not r.get("slow", True)]
    out = [f"{len(rows)} tests, CPU {sum(r['cpu_s'] for r in rows):.1f} s, wall {sum(r['wall_s'] for r in rows):.1f} s; "
           f"not slow: {len(fast)} tests, CPU {sum(r['cpu_s'] for r in fast):.1f} s",
           "", "per file (CPU s, wall s, tests):"]
    out += [f"{cpu:8.1f} {wall:8.1f} {n:4d}  {name}"
            for name, (wall, cpu, n) in sorted(files.items(), key=lambda kv: -kv[1][1])]
    out += ["", f"top {top} tests (CPU s, wall s):"]
    out += [f"{r['cpu_s']:8.1f} {r['wall_s']:8.1f}  {r['worker']:5s} {r['test']}"
            for r in sorted(rows, key=lambda r: -r["cpu_s"])[:top]]
    t0 = min(r["start"] for r in rows)
    out += ["", "workers (first start, last end, busy wall s, CPU s, tests), s from the first start:"]
    for worker in sorted({r["worker"] for r in rows}):
        mine = [r for r in rows if r["worker"] == worker]
        out.append(f"{worker:5s} {min(r['start'] for r in mine) - t0:7.1f} {max(r['end'] for r in mine) - t0:7.1f} "
                   f"{sum(r['wall_s'] for r in mine):7.1f} {sum(r['cpu_s'] for r in mine):7.1f} {len(mine):4d}")
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    print(summary(Path(sys.argv[1]), *(int(a) for a in sys.argv[2:3])))
