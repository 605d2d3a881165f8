"""The wall time `make test` would take on an idle machine, predicted from a per-test CPU log of a loaded run
(support/cpu_log.py): the xdist schedule replayed over shared cores (docs/development.md#time).

The model: each test has an idle CPU time c (the logged CPU times k) and an idle wall time w = c / p, p its
parallelism in the log (its CPU over its wall, at least 1), or a wall given for it (a test that waits on a
clock: the daemon's ticks); while it runs it wants c / w cores. The loadfile scheduler is replayed as
pytest-xdist runs it: units of work in the collection's order (a file, or one test of a SPREAD file), one unit
to each worker, then a new unit to a worker that has 2 tests or fewer pending. When the running tests want more
cores than there are, the CPU-bound ones share what the clock-bound ones leave. A test of the shared market
does not start before the test that builds it ended (the market's lock).

    python -m liq_pipeline_tests.support.schedule_replay times.jsonl --workers 3 --k 0.75 \
        --wall test_backfill_runs_as_concurrent=158 --wall e2e/test_ui_backfill=92:free
"""

from __future__ import annotations

import argparse
import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Item:
    nodeid: str
    scope: str  # the unit of work it belongs to (its file, or itself in a SPREAD file)
    cpu_s: float
    wall_s: float
    on_clock: bool = False  # its wall is a clock's (ticks), not slowed when the cores are short
    market: bool = False  # uses the shared market


def replay(tests: list[Item], workers: int, cores: float = 2.0, dt: float = 0.05) -> dict:
    """Makespan (s), each worker's last end (s) and the mean cores used, for `tests` in collection order."""
    queue: OrderedDict[str, list[Item]] = OrderedDict()
    for t in tests:
        queue.setdefault(t.scope, []).append(t)
    pending: list[list[Item]] = [[] for _ in range(workers)]
    current: list[Item | None] = [None] * workers
    progress = [0.0] * workers
    ends = [0.0] * workers

    def assign(w: int) -> None:  # xdist: after a test completed, a new unit if 2 tests or fewer are left
        if queue and len(pending[w]) <= 2:
            pending[w].extend(queue.popitem(last=False)[1])

    for w in range(workers):
        if queue:
            pending[w].extend(queue.popitem(last=False)[1])
    for w in range(workers):
        assign(w)
    builder = next((t for t in tests if t.market), None)
    market_ready = builder is None
    now = used = 0.0
    while any(pending) or any(current):
        for w in range(workers):
            if current[w] is None and pending[w]:
                nxt = pending[w][0]
                if nxt.market and nxt is not builder and not market_ready:
                    continue
                current[w], progress[w] = pending[w].pop(0), 0.0
        running = [t for t in current if t is not None]
        on_clock = sum(t.cpu_s / t.wall_s for t in running if t.on_clock)
        free = sum(t.cpu_s / t.wall_s for t in running if not t.on_clock)
        speed = min(1.0, max(cores - on_clock, 0.1 * cores) / free) if free > 0 else 1.0
        used += min(on_clock + free, cores) * dt
        for w, t in enumerate(current):
            if t is None:
                continue
            progress[w] += dt * (1.0 if t.on_clock else speed) / t.wall_s
            if progress[w] >= 1.0:
                market_ready |= t is builder
                current[w], ends[w] = None, now + dt
                assign(w)
        now += dt
    return {"makespan_s": now, "ends_s": ends, "cores_used": used / now if now else 0.0,
            "cpu_s": sum(t.cpu_s for t in tests)}


def items_from_log(log: Path, collected: list[tuple[str, bool]], spread: set[str], k: float,
                   walls: dict[str, tuple[float, bool]]) -> list[Item]:
    """`collected`: (node id, uses the shared market) in collection order; `walls`: a node-id substring ->
    (idle wall s, on the clock). Tests missing from the log count 0.05 s."""
    logged = {}
    for line in log.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        logged[row["test"]] = row
    tests = []
    for nodeid, market in collected:
        row = logged.get(nodeid, {"cpu_s": 0.05, "wall_s": 0.05})
        cpu = row["cpu_s"] * k
        wall = max(cpu / max(1.0, row["cpu_s"] / max(row["wall_s"], 1e-3)), 0.01)
        on_clock = False
        for part, (given, clock) in walls.items():
            if part in nodeid:
                wall, on_clock = given, clock
        path = nodeid.split("::", 1)[0].split("/", 1)[1]
        tests.append(Item(nodeid, nodeid if path in spread else path, cpu, wall, on_clock, market))
    return tests


def collect() -> list[tuple[str, bool]]:
    """The suite's node ids in `make test`'s order (conftest.py), each with whether it uses the shared market."""
    import pytest

    class Collector:
        items: list[tuple[str, bool]] = []

        def pytest_collection_finish(self, session):
            self.items = [(i.nodeid, "shared_market" in getattr(i, "fixturenames", ())) for i in session.items]

    collector = Collector()
    pytest.main(["--collect-only", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", str(Path(__file__).parents[1])],
                plugins=[collector])
    return collector.items


def main(argv: list[str] | None = None) -> None:
    from liq_pipeline_tests.conftest import SPREAD

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path, help="a support/cpu_log.py log (JSON lines)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--k", type=float, nargs="+", default=[0.75], help="idle CPU / logged CPU")
    parser.add_argument("--wall", action="append", default=[],
                        help="NODEID_PART=SECONDS[:free]: a test's idle wall, on the clock unless ':free'")
    args = parser.parse_args(argv)
    walls = {}
    for spec in args.wall:
        part, value = spec.split("=", 1)
        seconds, _, mode = value.partition(":")
        walls[part] = (float(seconds), mode != "free")
    collected = collect()
    for k in args.k:
        for workers in args.workers:
            out = replay(items_from_log(args.log, collected, SPREAD, k, walls), workers)
            m = out["makespan_s"]
            print(f"k {k}: {workers} workers: {int(m // 60)} min {m % 60:.0f} s, CPU {out['cpu_s']:.0f} s "
                  f"(at least {out['cpu_s'] / 2:.0f} s on 2 cores), cores used {out['cores_used']:.2f}, "
                  f"workers end at " + ", ".join(f"{e:.0f}" for e in out["ends_s"]) + " s")


if __name__ == "__main__":
    main()
