"""The warehouse resource: a missing folder is created, a lock held by another process is waited for and
then reported with the file and the holder, and a lock that is released in time is simply taken."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from liq_pipeline.warehouse.resource import WarehouseLocked, WarehouseResource, connect

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS t AS SELECT 1 AS x")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold_lock(path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_missing_folder_is_created(tmp_path):
    db = tmp_path / "new" / "folder" / "liq.duckdb"
    with WarehouseResource(database=str(db)).get_connection() as con:
        assert con.execute("SELECT 42").fetchall() == [(42,)]
    assert db.exists()


def test_lock_held_by_another_process_gives_a_clear_error(tmp_path):
    db = tmp_path / "liq.duckdb"
    holder = _hold_lock(db, 30)
    try:
        t = time.monotonic()
        with pytest.raises(WarehouseLocked) as err:
            with WarehouseResource(database=str(db), lock_timeout_s=1.0).get_connection():
                pass
        assert time.monotonic() - t < 20  # bounded: not dagster-duckdb's ~100 s of silent retries
        message = str(err.value)
        assert str(db) in message and "locked by another process" in message and "one writer" in message
    finally:
        holder.kill()
        holder.wait()


def test_lock_released_in_time_is_taken_and_nothing_is_lost(tmp_path):
    db = tmp_path / "liq.duckdb"
    holder = _hold_lock(db, 1.0)
    try:
        con = connect(str(db), lock_timeout_s=30.0, poll_s=0.1)
        assert con.execute("SELECT x FROM t").fetchall() == [(1,)]
        con.close()
    finally:
        holder.wait()
