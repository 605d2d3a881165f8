"""Hand the memory a finished partition freed back to the operating system.

A range run materializes day after day in one process. glibc's malloc keeps what a day's numpy arrays,
pandas frames and DuckDB query buffers freed in its heaps and arenas for reuse, and its mmap threshold rises
with every large array freed, so later arrays come from the heap too: the process's resident memory grows
with the partitions it has run, not with the work of one. `release_freed_memory` (malloc_trim) returns the
free pages of every arena; the warehouse resource calls it when a partition's connection closes. Issue 29:
the 30-day backfill's own peak was 1,053 MB, most of it in the model group; see docs/benchmarks.md."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (musl, macOS, Windows)."""
    try:
        return ctypes.CDLL(None).malloc_trim  # the symbols the interpreter is linked with: glibc's on Linux
    except (OSError, AttributeError, TypeError):
        return None


def release_freed_memory() -> bool:
    """Return the C heap's free pages to the operating system; False where that is not available."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
