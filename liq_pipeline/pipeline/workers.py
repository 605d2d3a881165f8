"""Work done beside the chain: a range run's pictures, HTML reports and oracle maps in worker processes.

Drawing is most of the heatmap stage's CPU and most of the levels' (about a second per picture), the
oracle map most of the validation report's, and each needs nothing but the arrays it is given. By default
(`workers() == 1`) every task runs in the calling process at once, as always. A batch that owns the
machine (`make demo`) opens `running_in(n)`: tasks then run in n spawned processes while the caller
computes the next day, and the caller collects them before its step ends. The same functions on the same
arrays: the PNG bytes and the figures are identical.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

_pool: ProcessPoolExecutor | None = None
_workers = 1


def workers() -> int:
    """Worker processes open now (1: tasks run in the calling process)."""
    return _workers


def cpu_s() -> float:
    """User + system CPU seconds the open worker processes have used so far, read from /proc (0 with none
    open, or where /proc is not there). Once the pool has closed, its processes' CPU is the caller's
    RUSAGE_CHILDREN instead, so the two never count the same second twice."""
    if _pool is None:
        return 0.0
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in list(getattr(_pool, "_processes", None) or {}):
        try:  # fields after the command name: state first, utime and stime 12th and 13th
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def submit(fn: Callable, *args, **kwargs) -> Future:
    """Run `fn(*args, **kwargs)` (picklable arguments, a picklable result) in a worker process,
    or at once here when none is open; the Future holds the result, or the error to re-raise."""
    if _pool is None:
        done: Future = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except Exception as e:  # handed to the caller by result(), as a worker's error would be
            done.set_exception(e)
        return done
    return _pool.submit(fn, *args, **kwargs)


@contextlib.contextmanager
def running_in(n: int) -> Iterator[None]:
    """Run submitted tasks in `n` spawned worker processes until the block ends (n <= 1: in the calling process).
    Spawned, not forked: the caller holds DuckDB connections and threads a fork would copy."""
    global _pool, _workers
    if n <= 1 or _pool is not None:
        yield
        return
    import multiprocessing

    _pool, _workers = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn")), n
    try:
        yield
    finally:
        pool, _pool, _workers = _pool, None, 1
        pool.shutdown(wait=True, cancel_futures=True)
