"""apps/event_storage.py: inside the block, SQLAlchemy connections to a SQLite file under the instance folder
skip the disk flush at commit (synchronous=OFF); files elsewhere, and every connection after the block, keep
SQLite's default (FULL), and what is written reads back the same."""

from __future__ import annotations

import sqlalchemy as sa

from liq_pipeline.apps.event_storage import unsynced

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


def test_one_engine_per_shard_stores_and_reads_every_event_then_gives_dagster_its_storage_back(tmp_path):
    import dagster as dg
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    from liq_pipeline.apps.event_storage import fast_event_storage

    dagster_connect = SqliteEventLogStorage._connect
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        with fast_event_storage(tmp_path):
            assert SqliteEventLogStorage._connect is not dagster_connect
            for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
                instance.report_runless_asset_event(dg.AssetMaterialization("heat", partition=day, metadata={"d": day}))
            inside = instance.fetch_materializations(dg.AssetKey("heat"), limit=10).records
        assert SqliteEventLogStorage._connect is dagster_connect
        after = instance.fetch_materializations(dg.AssetKey("heat"), limit=10).records
    assert sorted(r.partition_key for r in inside) == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert [r.storage_id for r in after] == [r.storage_id for r in inside]
    assert {r.asset_materialization.metadata["d"].value for r in after} == {"2026-01-01", "2026-01-02", "2026-01-03"}
