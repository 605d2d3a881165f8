"""apps/unsynced_sqlite.py: inside the block, SQLAlchemy connections to a SQLite file under the instance folder
skip the disk flush at commit (synchronous=OFF); files elsewhere, and every connection after the block, keep
SQLite's default (FULL), and what is written reads back the same."""

from __future__ import annotations

import sqlalchemy as sa

from liq_pipeline.apps.unsynced_sqlite import unsynced

OFF, FULL = 0, 2


def _synchronous_and_rows(path) -> tuple[int, list]:
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as con:
            con.execute(sa.text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            con.execute(sa.text("INSERT INTO t VALUES (1)"))
        with engine.connect() as con:
            return con.execute(sa.text("PRAGMA synchronous")).scalar(), con.execute(sa.text("SELECT x FROM t")).all()
    finally:
        engine.dispose()


def test_only_the_instance_folders_databases_skip_the_flush_and_only_inside_the_block(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    (home / "storage").mkdir(parents=True)
    elsewhere.mkdir()
    with unsynced(home):
        assert _synchronous_and_rows(home / "storage" / "runs.db") == (OFF, [(1,)])
        assert _synchronous_and_rows(elsewhere / "other.db")[0] == FULL
    synchronous, rows = _synchronous_and_rows(home / "storage" / "runs.db")
    assert synchronous == FULL and rows == [(1,), (1,)]
