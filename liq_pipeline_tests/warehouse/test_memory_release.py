"""A range run hands each finished partition's freed memory back (warehouse/memory.py): glibc's malloc_trim is
found on Linux, and the warehouse resource calls it each time a partition's connection closes."""

import sys

import numpy as np
import pytest

from liq_pipeline.warehouse import memory, resource


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim is Linux's")
def test_freed_heap_pages_go_back_to_the_system():
    def rss_kb() -> int:
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))

    # Many 64 KiB blocks (below the mmap threshold, so they come from the heap), then all but the last freed:
    # without a trim the heap keeps the pages resident.
    blocks = [np.ones(8_000) for _ in range(4_000)]
    keep = blocks[-1]
    del blocks
    before = rss_kb()
    assert memory.release_freed_memory() is True
    assert before - rss_kb() > 100_000  # more than 100 MB of the 256 MB freed went back
    assert keep.sum() == 8_000


def test_the_warehouse_resource_releases_memory_when_a_partition_connection_closes(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(resource, "release_freed_memory", lambda: calls.append(1) or True)
    warehouse = resource.WarehouseResource(database=str(tmp_path / "w.duckdb"))
    for _ in range(3):
        with warehouse.get_connection() as con:
            con.execute("SELECT 1")
            assert calls == [1] * len(calls)
    assert len(calls) == 3
