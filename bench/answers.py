"""Issue 29, item 4 in `make bench`: the answers (`liq heatmap`, `--at`, `liq zones`, `liq serve`) at load
average 3, and the rows that report them beside the idle and the concurrent-run figures.

The load is made by CPU burners: processes that spin on the shared cores while the cold, query and serve
sections run again (after a warm-up, so the 1-minute load average has risen), as many as top the 1-minute
load average up to 3 (3 on an idle machine, none on a machine already busier than that). Each row says how
many burners ran and the 1-minute load average measured at the end of its section.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

#: The 1-minute load average the burners top the machine up to.
TARGET_LOAD = 3
#: Seconds the burners spin before the first measurement (the 1-minute load average follows with a lag).
WARM_UP_S = 20


class CpuBurners:
    """`n` processes that spin until the context ends (default: TARGET_LOAD minus the load average, rounded)."""

    def __init__(self, n: int | None = None, warm_up_s: float = WARM_UP_S):
        self.n = max(0, round(TARGET_LOAD - os.getloadavg()[0])) if n is None else n
        self.warm_up_s = warm_up_s if self.n else 0
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> CpuBurners:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.n)]
        time.sleep(self.warm_up_s)
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def _load(r: dict) -> str:
    return f"load average {r['load_average_1m']} with {r.get('burners', '?')} CPU burners beside"


def load3_rows(results: dict, verdict, cold_ms: float, query_p99_ms: float, serve_ms: float) -> list[tuple]:
    """Rows of the answers at load average 3 or more: cold processes, `--at` calls and `liq serve` (the
    concurrent-run figures are in the rows above). A target is met only if it holds here too."""
    rows = []

    def ok(name: str) -> dict | None:
        r = results.get(name)
        return r if isinstance(r, dict) and "failed" not in r else None

    beside = f"at load ≥ {TARGET_LOAD}"
    if r := ok("cold_load3"):
        for cmd, target in (("heatmap", cold_ms), ("zones", cold_ms)):
            rows.append((f"c. {beside}: cold `liq {cmd}` process",
                         f"{r[f'{cmd}_median_ms']} ms (max {r[f'{cmd}_max_ms']}; CPU {r[f'{cmd}_cpu_median_ms']})", "",
                         _load(r), f"< {target} ms",
                         verdict(r[f"{cmd}_median_ms"] < target)))
    if r := ok("query_load3"):
        rows.append((f"c. {beside}: liq heatmap --at, {r['queries']} calls",
                     f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms (CPU p99 {r.get('cpu_p99_ms', '?')} ms)", "",
                     f"{_load(r)}; warehouse, fresh connection: p99 "
                     f"{r.get('fresh_connection_p99_ms', '?')} ms", f"p99 < {query_p99_ms} ms",
                     verdict(r["p99_ms"] < query_p99_ms)))
    if r := ok("serve_load3"):
        for name, label in (("view_1w", "heatmap, 1-week lookback"), ("instant", "map of one instant")):
            rows.append((f"h. {beside}: liq serve {label}", f"p50 {r[name + '_p50_ms']} ms, p99 {r[name + '_p99_ms']} ms",
                         "", f"{_load(r)}; {r['requests']} HTTP requests",
                         f"< {serve_ms} ms", verdict(r[name + "_p99_ms"] < serve_ms)))
    return rows
