"""Issue 29, item 4 in `make bench`: the answers (`liq heatmap`, `--at`, `liq zones`, `liq serve`) at load
average 3, and the rows that report them beside the idle and the concurrent-run figures.

The load: the concurrent materialization of the `load` section (another process backfilling later days) and
CPU burners, processes that spin on the shared cores at normal priority. The 1-minute load average follows
the number of runnable processes with a lag (an exponential average over a minute, updated every 5 s), so
burners started 20 s before measuring lifted it only to 1.7-2.2 (issue 29's first load-3 rows). Now
`AtLoad` starts twice TARGET_LOAD burners until the 1-minute load average reaches TARGET_LOAD (at most
`max_warm_up_s`; none when the machine is already there), then keeps it there: every 5 s it adds a burner
when the load average is below TARGET_LOAD + 0.3 and stops one above TARGET_LOAD + 1.5. Each section records the load average at its
start and end and the lowest one sampled while it ran; a section whose lowest load average is under
TARGET_LOAD gets a MISS row saying "not at load 3", whatever its latency.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

#: The 1-minute load average the answers must hold at.
TARGET_LOAD = 3
#: Seconds between two looks at the load average (Linux updates it every 5 s).
POLL_S = 1.0
#: Polls between two changes of the number of burners.
ADJUST_EVERY = 5
#: The longest wait for the load average to reach TARGET_LOAD before the sections run anyway (their rows
#: then say "not at load 3").
MAX_WARM_UP_S = 180


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


class AtLoad:
    """Keeps the 1-minute load average at TARGET_LOAD or above with CPU burners while the context lasts;
    `measure` runs a section and records the load average it ran at. `writer` (optional) is the concurrent
    materialization, which must still be running when a section ends."""

    def __init__(self, writer=None, max_warm_up_s: float = MAX_WARM_UP_S, target: float = TARGET_LOAD):
        self.writer, self.max_warm_up_s, self.target = writer, max_warm_up_s, target
        self.procs: list[subprocess.Popen] = []
        self.samples: list[float] = []
        self.most_burners = 0
        self.warm_up_s = 0.0
        self.load_before = load_average()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._hold, daemon=True)

    # ------------------------------------------------------------------ burners
    def _set_burners(self, n: int) -> None:
        with self._lock:
            while len(self.procs) < n:
                self.procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
            while len(self.procs) > n:
                p = self.procs.pop()
                p.kill()
                p.wait()
            self.most_burners = max(self.most_burners, len(self.procs))

    def _hold(self) -> None:
        polls = 0
        while not self._stop.wait(POLL_S):
            load = os.getloadavg()[0]
            self.samples.append(load)
            polls += 1
            if polls % ADJUST_EVERY:  # the load average moves every 5 s: adjust no faster
                continue
            n = len(self.procs)
            if load < self.target + 0.3:
                self._set_burners(min(n + 1, 3 * int(self.target)))
            elif load > self.target + 1.5 and n > 0:
                self._set_burners(n - 1)

    def __enter__(self) -> AtLoad:
        t = time.monotonic()
        if os.getloadavg()[0] < self.target + 0.2:  # a machine already busier needs no burner
            self._set_burners(2 * int(self.target))
            while os.getloadavg()[0] < self.target + 0.2 and time.monotonic() - t < self.max_warm_up_s:
                time.sleep(POLL_S)
            self._set_burners(int(self.target))
        self.warm_up_s = round(time.monotonic() - t, 1)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._set_burners(0)

    @property
    def burners(self) -> int:
        return len(self.procs)

    # ------------------------------------------------------------------ sections
    def measure(self, fn, *args) -> dict:
        """`fn(*args)` at this load: its result with the load average at its start and end, the lowest sampled
        in between, the burners, and `at_load` (the lowest load average reached TARGET_LOAD)."""
        first = len(self.samples)
        start, burners_at_start = load_average(), self.burners
        out = fn(*args)
        end = load_average()
        lows = [start, end, *self.samples[first:]]
        if self.writer is not None and not self.writer.still_running():
            raise RuntimeError("the concurrent materialization stopped before the measurement ended")
        return {**out, "load_start": start, "load_end": end, "load_min": round(min(lows), 2),
                "load_max": round(max(lows), 2), "burners": f"{burners_at_start}-{self.burners}"
                if burners_at_start != self.burners else burners_at_start,
                "concurrent_materialization": self.writer is not None, "warm_up_s": self.warm_up_s,
                "at_load": min(lows) >= self.target}


def _load(r: dict) -> str:
    beside = " and a concurrent materialization" if r.get("concurrent_materialization") else ""
    if "load_start" not in r:  # results of an older bench
        return f"load average {r['load_average_1m']} with {r.get('burners', '?')} CPU burners beside"
    return (f"load average {r['load_start']} → {r['load_end']} (lowest {r['load_min']}) with {r['burners']} CPU "
            f"burners{beside}" + ("" if r.get("at_load") else f"; NOT at load {TARGET_LOAD}"))


def load3_rows(results: dict, verdict, cold_ms: float, query_p99_ms: float, serve_ms: float) -> list[tuple]:
    """Rows of the answers at load average 3 or more: cold processes, `--at` calls and `liq serve` (the
    concurrent-run figures are in the rows above). A target is met only if it holds here too, and only if the
    load average stayed at 3 or more while the section ran (else MISS, "NOT at load 3")."""
    rows = []

    def ok(name: str) -> dict | None:
        r = results.get(name)
        return r if isinstance(r, dict) and "failed" not in r else None

    def at(r: dict, meets: bool) -> str:
        return verdict(meets, r.get("at_load", True))

    beside = f"at load ≥ {TARGET_LOAD}"
    if r := ok("cold_load3"):
        for cmd, target in (("heatmap", cold_ms), ("zones", cold_ms)):
            rows.append((f"c. {beside}: cold `liq {cmd}` process",
                         f"{r[f'{cmd}_median_ms']} ms (max {r[f'{cmd}_max_ms']}; CPU {r[f'{cmd}_cpu_median_ms']})", "",
                         _load(r), f"< {target} ms",
                         at(r, r[f"{cmd}_median_ms"] < target)))
    if r := ok("query_load3"):
        rows.append((f"c. {beside}: liq heatmap --at, {r['queries']} calls",
                     f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms (CPU p99 {r.get('cpu_p99_ms', '?')} ms)", "",
                     f"{_load(r)}; warehouse, fresh connection: p99 "
                     f"{r.get('fresh_connection_p99_ms', '?')} ms", f"p99 < {query_p99_ms} ms",
                     at(r, r["p99_ms"] < query_p99_ms)))
    if r := ok("serve_load3"):
        for name, label in (("view_1w", "heatmap, 1-week lookback"), ("view_1w_leverage", "same, leverage filter"),
                            ("instant", "map of one instant")):
            if f"{name}_p99_ms" in r:
                rows.append((f"h. {beside}: liq serve {label}",
                             f"p50 {r[name + '_p50_ms']} ms, p99 {r[name + '_p99_ms']} ms", "",
                             f"{_load(r)}; {r['requests']} HTTP requests", f"< {serve_ms} ms",
                             at(r, r[name + "_p99_ms"] < serve_ms)))
    return rows
