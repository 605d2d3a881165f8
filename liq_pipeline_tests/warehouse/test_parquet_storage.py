"""LIQ_STORAGE=parquet: the whole chain writes one Parquet file per partition and gives the same tables as
the DuckDB file; re-materializing replaces files (no duplicates); a failed write keeps the old file."""

from __future__ import annotations

import datetime as dt
import math

import dagster as dg
import duckdb
import pytest

from liq_pipeline.apps.demo import QUIET, _range_tags
from liq_pipeline.warehouse import parquet
from liq_pipeline.warehouse.io import count_partition, replace_partition
from liq_pipeline_tests.support.shared_market import FIRST, LAST, SYMBOL

TABLES = ["raw.agg_trades", "raw.klines", "raw.mark_price_klines", "raw.open_interest", "raw.funding_rates",
          "truth.positions", "truth.liquidations", "model.volume_profile_daily", "model.volume_profile_baseline",
          "model.ofi_bins", "model.position_distribution", "model.liquidation_levels",
          "model.liquidation_heatmap", "model.heatmap_snapshots", "model.liquidation_zones"]


def _materialize_chain(mp: pytest.MonkeyPatch, data_dir, sim_dir, storage: str) -> None:
    mp.setenv("LIQ_DATA_DIR", str(data_dir))
    mp.setenv("LIQ_SIM_DIR", str(sim_dir))
    mp.setenv("LIQ_STORAGE", storage)
    from liq_pipeline.definitions import build_definitions

    defs = build_definitions()
    assets = list(defs.assets) + list(defs.asset_checks)
    instance = dg.DagsterInstance.ephemeral()
    for groups in (("raw", "truth"), ("model",), ("heatmap",)):
        result = dg.materialize(assets, selection=dg.AssetSelection.groups(*groups), instance=instance,
                                resources=dict(defs.resources), tags=_range_tags(SYMBOL, FIRST, LAST),
                                run_config=QUIET, raise_on_error=False)
        assert result.success, (storage, groups)


@pytest.fixture(scope="module")
def both(shared_market, tmp_path_factory):
    """The run's shared market (its DuckDB warehouse is the reference) and the same simulated files
    materialized again with LIQ_STORAGE=parquet."""
    tmp = tmp_path_factory.mktemp("storage")
    mp = pytest.MonkeyPatch()
    mp.setenv("LIQ_SYMBOLS", SYMBOL)
    mp.setenv("LIQ_START_DATE", FIRST.isoformat())
    for name in ("LIQ_SOURCE", "LIQ_WAREHOUSE", "LIQ_PARQUET_ROOT", "LIQ_PROFILE_SOURCE"):
        mp.delenv(name, raising=False)
    _materialize_chain(mp, tmp / "pq", shared_market.root / "archive-sim", "parquet")
    mp.undo()
    yield {"duck": duckdb.connect(str(shared_market.db), read_only=True),
           "pq": parquet.connect(str(tmp / "pq" / "parquet"), read_only=True), "root": tmp / "pq" / "parquet"}


def _rows(con, table: str) -> list[tuple]:
    cols = [(c, kind) for c, kind in parquet.columns(table) if c not in ("ingested_at",)]
    # Sums over the window may differ in the last bit (aggregation order): sort on rounded values, in SQL (the
    # heatmap's rows sorted in Python took 10 s of CPU).
    order = ", ".join(f"round({c}, 6)" if kind == "DOUBLE" else c for c, kind in cols)
    return con.execute(f"SELECT {', '.join(c for c, _ in cols)} FROM {table} ORDER BY {order}").fetchall()


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) if isinstance(x, float) and isinstance(y, float) else x == y
        for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("table", TABLES)
def test_parquet_mode_gives_the_same_tables_as_duckdb(both, table):
    duck, pq = _rows(both["duck"], table), _rows(both["pq"], table)
    assert len(pq) == len(duck) > 0
    different = [(d, p) for d, p in zip(duck, pq, strict=True) if not _same(d, p)]
    assert not different, different[:3]


def test_one_file_per_partition_in_a_hive_layout(both):
    files = sorted(p.relative_to(both["root"]).as_posix() for p in both["root"].rglob("*.parquet"))
    assert f"model/liquidation_heatmap/symbol={SYMBOL}/day=2026-01-02/part.parquet" in files
    assert f"raw/ingest_log/symbol={SYMBOL}/day=2026-01-01/raw_agg_trades.parquet" in files
    assert not list(both["root"].rglob("*.tmp"))


def test_rewrite_is_idempotent_and_a_failed_write_keeps_the_old_file(tmp_path):
    root = str(tmp_path / "pq")
    con = parquet.connect(root)
    day = dt.date(2026, 1, 2)
    select = ("SELECT 'BTCUSDT' AS symbol, DATE '2026-01-02' AS day, 'volume_5050' AS variant, 'long' AS side, "
              "TIMESTAMP '2026-01-03' AS as_of, "
              "i AS bin_id, 100.0 + i AS price, 10.0 * i AS notional_usd, i AS collateral_usd FROM range(5) t(i)")
    for _ in range(2):
        assert replace_partition(con, "model.liquidation_levels", "BTCUSDT", day, select) == 5
    assert count_partition(con, "model.liquidation_levels", "BTCUSDT", day) == 5
    with pytest.raises(duckdb.Error):  # NOT NULL violated: nothing is written
        replace_partition(con, "model.liquidation_levels", "BTCUSDT", day, select.replace("i AS bin_id", "NULL AS bin_id"))
    with pytest.raises(ValueError, match="another partition"):
        replace_partition(con, "model.liquidation_levels", "BTCUSDT", day, select.replace("DATE '2026-01-02'", "DATE '2026-01-03'"))
    assert count_partition(con, "model.liquidation_levels", "BTCUSDT", day) == 5
    assert not list((tmp_path / "pq").rglob("*.tmp"))


def test_liq_reads_the_parquet_warehouse(both, monkeypatch, capsys):
    from liq_pipeline.cli import main as cli

    monkeypatch.setenv("LIQ_STORAGE", "parquet")
    monkeypatch.setenv("LIQ_PARQUET_ROOT", str(both["root"]))
    monkeypatch.setenv("LIQ_SYMBOLS", SYMBOL)
    assert cli.main(["heatmap", SYMBOL, "--format", "json"]) == 0
    assert f'"symbol": "{SYMBOL}"' in capsys.readouterr().out
    assert cli.main(["zones", SYMBOL]) == 0


def test_user_liquidation_imports_refuse_parquet_clearly(tmp_path):
    from liq_pipeline.market import liquidation_imports

    con = parquet.connect(str(tmp_path / "pq"))
    with pytest.raises(NotImplementedError, match="LIQ_STORAGE=parquet"):
        liquidation_imports.replace_source(con, "raw.realized_liquidations", "file:x", None)
