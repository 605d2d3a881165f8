"""Pictures drawn beside the computation: a range run's PNGs and HTML reports in worker processes.

Drawing is most of the heatmap stage's CPU and most of the levels' (about a second per picture), and it
needs nothing but the arrays it is given. By default (`workers() == 1`) every picture is drawn in the
calling process at once, as always. A batch that owns the machine (`make demo`) opens `drawing_in(n)`:
pictures are then drawn by n spawned processes while the caller computes the next day, and the caller
collects them before its step ends. The same functions on the same arrays: the PNG bytes are identical.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

_pool: ProcessPoolExecutor | None = None
_workers = 1


def workers() -> int:
    """Processes drawing pictures now (1: in the calling process)."""
    return _workers


def draw(fn: Callable, *args, **kwargs) -> Future:
    """Run `fn(*args, **kwargs)` (a picture: picklable arguments, a picklable result) in a drawing process,
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
def drawing_in(n: int) -> Iterator[None]:
    """Draw pictures in `n` spawned worker processes until the block ends (n <= 1: in the calling process).
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
