"""Dagster's SQLite storage without a disk flush per event, for a batch that owns the instance (`make demo`).

Dagster's default storage commits every event (a planned materialization per partition and asset, each
materialization, each check result) in its own SQLite transaction, and SQLite waits for the disk to flush
each commit: the demo's ~2,000 events per stage spent more wall time in those flushes than in the model.
Inside `unsynced(home)` the connections this process opens to a database under `home` set
`PRAGMA synchronous=OFF`: SQLite hands each commit to the operating system without waiting for the disk.
What is written is the same; a crash of the demo process loses nothing committed, only a power cut or an
operating-system crash during the run could leave the instance's history damaged (delete `.dagster_home`
and rerun the demo then). Connections of other processes (`make ui`) are untouched.
"""

from __future__ import annotations

import contextlib
import sqlite3
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
