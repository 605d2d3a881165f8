"""Nothing stored is ever lost, and every fault names its cause (issue 18): raw ingestion against temp
mirrors and an archive server on 127.0.0.1, through Dagster, with the warehouse checked afterwards."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from liq_pipeline.assets import raw
from liq_pipeline.market.formats import ArchiveFile
from liq_pipeline.resources import MarketSource
from liq_pipeline.warehouse.io import table_exists
from liq_pipeline_tests.archive_server import ArchiveServer
from liq_pipeline_tests.mirror_fixture import write_day

DAY = dt.date(2026, 1, 5)


def key(day: dt.date = DAY, symbol: str = "BTCUSDT") -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": day.isoformat(), "symbol": symbol})


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "mirror"
    for day in (DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1)):
        write_day(root, "BTCUSDT", day, n_trades=50)
    return root


def mirror_resources(tmp_path, mirror) -> dict:
    return {"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")),
            "market": MarketSource(kind="mirror", mirror_dir=str(mirror), cache_dir=str(tmp_path / "cache"))}


def http_resources(tmp_path, url: str, cache: str = "cache") -> dict:
    return {"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")),
            "market": MarketSource(kind="binance", base_url=url, cache_dir=str(tmp_path / cache))}


def materialize(res, assets, partition=None):
    return dg.materialize(assets, resources=res, partition_key=partition or key(),
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def failure_message(result) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures, "expected a failed step"
    return str(failures[0].event_specific_data.error.message)


def rows(res, table: str, day: dt.date = DAY) -> int:
    with res["duckdb"].get_connection() as con:
        return con.execute(f"SELECT count(*) FROM {table} WHERE day = ?", [day]).fetchone()[0]


def ingest_log_status(res, table: str, day: dt.date = DAY) -> str | None:
    with res["duckdb"].get_connection() as con:
        if not table_exists(con, "raw.ingest_log"):
            return None
        row = con.execute("SELECT status FROM raw.ingest_log WHERE table_name = ? AND day = ?", [table, day]).fetchone()
    return row[0] if row else None


# ---- 1. an absent file never deletes stored rows ------------------------------------------------------
def test_file_deleted_from_mirror_fails_and_keeps_the_stored_rows(tmp_path, mirror):
    res = mirror_resources(tmp_path, mirror)
    assert materialize(res, [raw.klines]).success
    assert rows(res, "raw.klines") == 1440
    spec = ArchiveFile("klines", "BTCUSDT", DAY, interval="1m")
    (mirror / spec.relpath).unlink()
    (mirror / spec.checksum_relpath).unlink()
    result = materialize(res, [raw.klines])
    assert not result.success
    message = failure_message(result)
    assert "keeps its 1,440 stored rows" in message and "removed or renamed" in message
    assert rows(res, "raw.klines") == 1440
    assert ingest_log_status(res, "raw.klines") == "ok"


def test_mistyped_archive_url_keeps_stored_partitions_and_names_the_url(tmp_path, mirror):
    with ArchiveServer(mirror) as server:
        res = http_resources(tmp_path, server.url)
        assert materialize(res, [raw.open_interest]).success
        assert rows(res, "raw.open_interest") == 288
        wrong = http_resources(tmp_path, server.url + "/typo", cache="other-cache")  # nothing cached for it
        result = materialize(wrong, [raw.open_interest])
        assert not result.success
        assert "keeps its 288 stored rows" in failure_message(result)
        assert rows(res, "raw.open_interest") == 288
        # A partition with nothing stored: the neighbouring days answer 404 too, so it is not a gap.
        other = DAY + dt.timedelta(days=1)
        result = materialize(wrong, [raw.open_interest], key(other))
        assert not result.success
        message = failure_message(result)
        assert "in a row were not found" in message and f"archive URL {server.url}/typo" in message
        assert "LIQ_ARCHIVE_URL" in message
        assert ingest_log_status(res, "raw.open_interest", other) is None


def test_day_never_published_is_recorded_missing_only_when_neighbours_answer(tmp_path, mirror):
    spec = ArchiveFile("metrics", "BTCUSDT", DAY)
    (mirror / spec.relpath).unlink()
    (mirror / spec.checksum_relpath).unlink()
    res = mirror_resources(tmp_path, mirror)
    result = materialize(res, [raw.open_interest])
    assert result.success
    assert ingest_log_status(res, "raw.open_interest") == "missing"
    check = [e for e in result.get_asset_check_evaluations() if e.check_name == "open_interest_sampled_every_5m"][0]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR


def test_mistyped_symbol_fails_instead_of_storing_empty_partitions(tmp_path, mirror):
    res = mirror_resources(tmp_path, mirror)
    result = materialize(res, [raw.klines], key(symbol="ETHUSDT"))
    assert not result.success
    assert "LIQ_SYMBOLS" in failure_message(result)
    assert ingest_log_status(res, "raw.klines") is None
