"""Dagster's SQLite event storage at a batch's pace, for a batch that owns the instance (`make demo`).

Two things, each the same rows written (the demo's stages open both, `fast_event_storage(home)`):

1. No disk flush per event (`unsynced`). Dagster's default storage commits every event (a planned
materialization per partition and asset, each materialization, each check result) in its own SQLite
transaction, and SQLite waits for the disk to flush each commit: a profiled demo spent more wall time in
those flushes (about 3,700 before its model stage) than in any model stage.
Inside `unsynced(home)` the connections this process opens to a database under `home` set
`PRAGMA synchronous=OFF`: SQLite hands each commit to the operating system without waiting for the disk.
What is written is the same; a crash of the demo process loses nothing committed, only a power cut or an
operating-system crash during the run could leave the instance's history damaged (delete `.dagster_home`
and rerun the demo then). Connections of other processes (`make ui`) are untouched.
2. One SQLAlchemy engine per database file (`one_engine_per_shard`). Dagster 1.13's SQLite event storage
builds a new engine for every event it stores or reads, so SQLAlchemy compiles each INSERT and SELECT again
(its statement cache lives in the engine): about a third of the storage's CPU. Reusing the engine (still
NullPool: a connection per use, closed after it, as before) keeps the compiled statements. This replaces a
private method of the pinned Dagster version (pyproject.toml pins the Dagster family); where that method is
missing the storage is left as it is.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path


def _database_file(dbapi_con: sqlite3.Connection) -> Path | None:
    """The file of the connection's main database (None for an in-memory one)."""
    for _seq, name, file in dbapi_con.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return Path(file).resolve() if file else None
    return None


@contextlib.contextmanager
def unsynced(home: Path) -> Iterator[None]:
    """Until the block ends, SQLAlchemy connections of this process to a SQLite database under `home` do
    not wait for the disk at commit (`PRAGMA synchronous=OFF`, module docstring)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    home = Path(home).resolve()

    def on_connect(dbapi_con, _record) -> None:
        if isinstance(dbapi_con, sqlite3.Connection):
            file = _database_file(dbapi_con)
            if file is not None and file.is_relative_to(home):
                dbapi_con.execute("PRAGMA synchronous=OFF")

    event.listen(Engine, "connect", on_connect)
    try:
        yield
    finally:
        event.remove(Engine, "connect", on_connect)


@contextlib.contextmanager
def one_engine_per_shard() -> Iterator[None]:
    """Until the block ends, Dagster's SQLite event storage reuses one engine per database file instead of
    creating and disposing one per event (module docstring, 2.)."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    original = SqliteEventLogStorage.__dict__.get("_connect")
    if original is None or not hasattr(SqliteEventLogStorage, "conn_string_for_shard"):
        yield
        return
    engines: dict[str, object] = {}
    lock = threading.Lock()

    @contextlib.contextmanager
    def _connect(self, shard: str):
        with self._db_lock:
            conn_string = self.conn_string_for_shard(shard)
            with lock:
                engine = engines.get(conn_string)
                if engine is None:
                    # as Dagster's own: NullPool, the same busy timeout
                    engine = engines[conn_string] = create_engine(
                        conn_string, poolclass=NullPool, connect_args={"timeout": _busy_timeout_s()})
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    SqliteEventLogStorage._connect = _connect
    try:
        yield
    finally:
        SqliteEventLogStorage._connect = original
        for engine in engines.values():
            engine.dispose()


def _busy_timeout_s() -> float:
    from dagster._core.storage.event_log.sqlite import sqlite_event_log

    return getattr(sqlite_event_log, "SQLITE_BUSY_TIMEOUT_SECONDS", 30)


@contextlib.contextmanager
def fast_event_storage(home: Path) -> Iterator[None]:
    """`unsynced(home)` and `one_engine_per_shard()` together: what `make demo` opens around its stages."""
    with unsynced(home), one_engine_per_shard():
        yield
