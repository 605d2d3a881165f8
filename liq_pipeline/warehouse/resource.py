"""The DuckDB warehouse resource: dagster-duckdb's DuckDBResource with a bounded wait for the write lock and
errors that say what to do.

One DuckDB file has one writer process. dagster-duckdb retries a failed connect for about 100 s whatever the
cause, and then re-raises DuckDB's message. Here a missing folder is created, a lock held by another process
is waited for up to `lock_timeout_s` seconds (a queued run usually frees it), and then `WarehouseLocked` names
the file and the process holding it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster_duckdb import DuckDBResource

from liq_pipeline.warehouse.memory import release_freed_memory


class WarehouseLocked(RuntimeError):
    """Another process holds the DuckDB file's write lock."""


def is_lock_error(error: Exception) -> bool:
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


def connect(database: str, *, read_only: bool = False, lock_timeout_s: float = 60.0, poll_s: float = 0.5,
            config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """Open `database`, waiting up to `lock_timeout_s` for another process's lock; raise WarehouseLocked after."""
    if database != ":memory:" and not read_only:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout_s
    while True:
        try:
            return duckdb.connect(database, read_only=read_only, config=config or {})
        except duckdb.IOException as e:
            if not is_lock_error(e):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseLocked(
                    f"the warehouse {database} is locked by another process (DuckDB allows one writer): {e}. "
                    "Wait for the running materialization to finish (the Dagster UI queues runs one at a time), "
                    "or stop the process that holds it."
                ) from e
            time.sleep(poll_s)


#: The configuration every connection of WarehouseResource opens the file with (DuckDB refuses a second
#: connection to an open file with another one).
RESOURCE_CONFIG = {"custom_user_agent": "dagster"}


@contextmanager
def held_open(database: str, lock_timeout_s: float = 60.0):
    """Keep `database` open in this process for the duration: every WarehouseResource connection opened
    meanwhile (same file, same configuration) joins the open database instead of opening the file and
    checkpointing it at each close (about 20 ms of CPU and 0.1-0.2 s of wall time each, hundreds per
    backfill). The same SQL on the same data: what is stored does not change. Holds the write lock
    throughout, so use it for batch work in one process (`make demo`), not beside the UI's runs.
    Yields the connection (usable for the batch's own writes)."""
    con = connect(database, lock_timeout_s=lock_timeout_s, config=dict(RESOURCE_CONFIG))
    try:
        yield con
    finally:
        con.close()


class WarehouseResource(DuckDBResource):
    """DuckDBResource with a bounded, explained wait for the write lock (see the module docstring).

    With `storage="parquet"` the connection is an in-memory DuckDB whose tables are views over the Parquet
    partitions under `parquet_root` (warehouse/parquet.py): no lock, partitions can run in parallel.
    """

    lock_timeout_s: float = 60.0
    storage: str = "duckdb"
    parquet_root: str = ""

    @contextmanager
    def get_connection(self):
        if self.storage == "parquet":
            from liq_pipeline.warehouse import parquet

            con = parquet.connect(self.parquet_root)
        else:
            con = connect(self.database, lock_timeout_s=self.lock_timeout_s,
                          config={**RESOURCE_CONFIG, **self.connection_config})
        try:
            yield con
        finally:
            con.close()
            release_freed_memory()  # a range run's partitions one after the other: warehouse/memory.py
