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
from liq_pipeline_tests.support.archive_server import ArchiveServer
from liq_pipeline_tests.support.raw_runs import (
    DAY,
    failure_message,
    http_resources,
    key,
    materialize,
    mirror_resources,
    rows,
)


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
    check = [e for e in result.get_asset_check_evaluations() if e.check_name == "open_interest_sampled_every_5m_BTCUSDT"][0]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR


def test_mistyped_symbol_fails_instead_of_storing_empty_partitions(tmp_path, mirror):
    res = mirror_resources(tmp_path, mirror)
    result = materialize(res, [raw.klines], key(symbol="ETHUSDT"))
    assert not result.success
    assert "LIQ_SYMBOLS" in failure_message(result)
    assert ingest_log_status(res, "raw.klines") is None


# ---- 6. one clear line for every configuration error; the cause of a failed write; parse lines ---------
@pytest.mark.parametrize("variable, value, expected", [
    ("LIQ_WINDOW_DAYS", "abc", "a whole number of days >= 1"),
    ("LIQ_HEATMAP_STEP_MINUTES", "7", "divides a day"),
    ("LIQ_HEATMAP_HALF_LIFE_HOURS", "-1", "a positive number of hours"),
    ("LIQ_BIN_MODE", "log", "relative, fixed"),
    ("LIQ_START_DATE", "2026-13-01", "a date like"),
    ("LIQ_KLINE_INTERVAL", "2m", "1m, 5m, 15m, 1h"),
    ("LIQ_STORAGE", "sqlite", "duckdb, parquet"),
    ("LIQ_MAX_CONCURRENT", "two", "a whole number"),
])
def test_bad_setting_is_one_line_naming_the_variable_with_exit_2(monkeypatch, capsys, variable, value, expected):
    from liq_pipeline.cli import main as cli

    monkeypatch.setenv(variable, value)
    assert cli.main(["heatmap", "BTCUSDT"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and variable in err and value in err
    assert expected in err


def test_bad_setting_never_ends_in_a_traceback_at_import(tmp_path):
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "LIQ_WINDOW_DAYS": "abc", "LIQ_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "import sys; from liq_pipeline.cli.main import main; sys.exit(main())",
                           "heatmap", "BTCUSDT"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("liq heatmap: LIQ_WINDOW_DAYS='abc' is not valid: expected a whole number of "
                                   "days >= 1 (default 30)")


@pytest.mark.parametrize("field, value, variable", [("kline_interval", "2m", "LIQ_KLINE_INTERVAL"),
                                                    ("profile_source", "kline", "LIQ_PROFILE_SOURCE")])
def test_configuration_error_in_a_run_fails_once_without_retries(tmp_path, mirror, field, value, variable):
    from liq_pipeline.assets import model

    res = mirror_resources(tmp_path, mirror)
    res["market"] = MarketSource(kind="mirror", mirror_dir=str(mirror), **{field: value})
    result = materialize(res, [raw.klines, model.volume_profile_daily])
    assert not result.success
    assert f"{variable}={value!r} is not valid" in failure_message(result)
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_failed_write_says_the_storage_cause_first_and_keeps_the_partition(tmp_path):
    """A file-size limit (RLIMIT_FSIZE) makes the commit fail the way a full disk does."""
    import subprocess
    import sys

    import duckdb

    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        from liq_pipeline.warehouse.io import replace_partition

        replace_partition(con, "raw.funding_rates", "BTCUSDT", DAY, """
            SELECT 'BTCUSDT' AS symbol, DATE '2026-01-05' AS day, TIMESTAMP '2026-01-05' AS calc_time,
                   TIMESTAMP '2026-01-05' AS funding_time, 8 AS funding_interval_hours, 0.0001 AS last_funding_rate,
                   0.0001 AS funding_rate_8h, 'archive' AS source""")
    script = f"""
import datetime as dt, resource, signal, duckdb
from liq_pipeline.warehouse.io import replace_partition
con = duckdb.connect({str(db)!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
size = {db.stat().st_size}
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 65536, size + 65536))
try:
    replace_partition(con, "raw.funding_rates", "BTCUSDT", dt.date(2026, 1, 5), '''
        SELECT 'BTCUSDT' AS symbol, DATE '2026-01-05' AS day, TIMESTAMP '2026-01-05' + INTERVAL (range) SECOND AS calc_time,
               TIMESTAMP '2026-01-05' + INTERVAL (range) SECOND AS funding_time, 8 AS funding_interval_hours,
               random() AS last_funding_rate, random() AS funding_rate_8h, md5(range::VARCHAR) AS source
        FROM range(200000)''')
except Exception as e:
    print(type(e).__name__ + ": " + str(e))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    headline = done.stdout.strip()
    assert headline.startswith("WarehouseWriteError: Could not write file"), (headline, done.stderr)
    assert "File too large" in headline and "keeps its previous rows" in headline
    assert "cannot rollback" not in headline
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.funding_rates").fetchone()[0] == 1


def test_malformed_value_rejected_in_sql_names_its_line(tmp_path, mirror):
    from liq_pipeline_tests.support.mirror_fixture import write_zip

    t0 = 1767571200000
    trades = [(i, 90000.0, 0.1, i, i, t0 + i, "true") for i in range(1, 5)]
    trades[2] = (3, 90000.0, 0.1, 3, 3, t0 + 3, "maybe")
    write_zip(mirror, ArchiveFile("aggTrades", "BTCUSDT", DAY), None, trades)
    result = materialize(mirror_resources(tmp_path, mirror), [raw.agg_trades])
    assert not result.success
    assert "BTCUSDT-aggTrades-2026-01-05.csv, line 3: " in failure_message(result)
    # One rule on every parse path (issue 28): it names the column and the value.
    assert "is_buyer_maker must be true or false, got maybe" in failure_message(result)


# ---- 7. symbols are validated: never a path, an unknown one said once --------------------------------
@pytest.mark.parametrize("value", ["../../../../ESC", "BTC/USDT", "btc usdt", "BTCUSDT;DROP", ""])
def test_symbols_that_are_not_exchange_symbols_are_refused(monkeypatch, value):
    from liq_pipeline import config

    monkeypatch.setenv("LIQ_SYMBOLS", value or " , ")
    with pytest.raises(config.ConfigError, match="LIQ_SYMBOLS"):
        config.configured_symbols()


def test_archive_paths_never_leave_the_data_folder():
    with pytest.raises(ValueError, match="not a Binance symbol"):
        ArchiveFile("aggTrades", "../../../../ESC", DAY)
    assert ArchiveFile("klines", "1000PEPEUSDT", DAY, interval="1m").relpath.startswith("data/futures/um/daily/")
    assert ArchiveFile("aggTrades", "BTCUSDT_260327", DAY).symbol == "BTCUSDT_260327"


def test_unknown_symbol_is_said_once(monkeypatch, caplog):
    from liq_pipeline import config

    monkeypatch.setenv("LIQ_SYMBOLS", "BTCUSDT,BTCUSTD")
    monkeypatch.setattr(config, "_warned_symbols", set())
    with caplog.at_level("WARNING", logger="liq_pipeline"):
        assert config.configured_symbols() == ["BTCUSDT", "BTCUSTD"]
        assert config.configured_symbols() == ["BTCUSDT", "BTCUSTD"]
    said = [r.getMessage() for r in caplog.records if "BTCUSTD" in r.getMessage()]
    assert len(said) == 1 and "check the spelling" in said[0]


# ---- 3. wrong data that passes its checksum is blocked before anything downstream reads it -----------
T0 = 1767571200000  # 2026-01-05 00:00 UTC


def test_another_days_file_under_the_right_name_is_blocked_before_downstream_assets(tmp_path, mirror):
    from liq_pipeline.assets import model
    from liq_pipeline.market.formats import AGG_TRADES_COLUMNS
    from liq_pipeline_tests.support.mirror_fixture import write_zip

    res = mirror_resources(tmp_path, mirror)
    assert materialize(res, [raw.agg_trades]).success
    # The next day's trades, zipped under this day's name with a CHECKSUM of their own: the checksum passes.
    next_day = [(i, 90000.0, 0.1, i, i, T0 + 86_400_000 + 1000 * i, "true") for i in range(1, 41)]
    write_zip(mirror, ArchiveFile("aggTrades", "BTCUSDT", DAY), AGG_TRADES_COLUMNS, next_day)
    result = materialize(res, [raw.agg_trades, raw.klines, model.volume_profile_daily])
    assert not result.success
    message = failure_message(result)
    assert "40 rows lie outside the partition day 2026-01-05" in message and "another day's data" in message
    assert not result.asset_materializations_for_node("volume_profile_daily")
    assert rows(res, "raw.agg_trades") == 50


def test_metrics_file_without_open_interest_columns_is_blocked(tmp_path, mirror):
    from liq_pipeline_tests.support.mirror_fixture import write_zip

    header = ("create_time", "symbol", "count_toptrader_long_short_ratio", "sum_toptrader_long_short_ratio",
              "count_long_short_ratio", "sum_taker_long_short_vol_ratio")
    body = [(f"2026-01-05 {h:02d}:00:00", "BTCUSDT", 1.2, 1.5, 1.1, 0.95) for h in range(24)]
    write_zip(mirror, ArchiveFile("metrics", "BTCUSDT", DAY), header, body)
    res = mirror_resources(tmp_path, mirror)
    result = materialize(res, [raw.open_interest])
    assert not result.success
    assert "without the open-interest columns" in failure_message(result)
    # Header-less, with the OI cells empty: the same verdict from the values.
    write_zip(mirror, ArchiveFile("metrics", "BTCUSDT", DAY), None,
              [(f"2026-01-05 {h:02d}:00:00", "BTCUSDT", "", "", 1.2, 1.5, 1.1, 0.95) for h in range(24)])
    result = materialize(res, [raw.open_interest])
    assert not result.success and "without open interest" in failure_message(result)


def test_kline_file_of_another_interval_is_blocked(tmp_path, mirror):
    from liq_pipeline.market.formats import KLINES_COLUMNS
    from liq_pipeline_tests.support.mirror_fixture import write_zip

    res = mirror_resources(tmp_path, mirror)
    assert materialize(res, [raw.mark_price_klines]).success
    step = 900_000  # 15m candles under the 1m name
    body = [(T0 + step * i, 90000, 90010, 89990, 90000, 1, T0 + step * (i + 1) - 1, 0, 0, 0, 0, 0) for i in range(96)]
    write_zip(mirror, ArchiveFile("markPriceKlines", "BTCUSDT", DAY, interval="1m"), KLINES_COLUMNS, body)
    result = materialize(res, [raw.mark_price_klines])
    assert not result.success
    assert "its candles are 15m apart, not 1m" in failure_message(result)
    assert rows(res, "raw.mark_price_klines") == 1440


# ---- 4. the warehouse is locked only while it is written, never while downloading --------------------
def test_warehouse_is_not_locked_while_a_download_hangs(tmp_path, mirror):
    import subprocess
    import sys
    import threading

    with ArchiveServer(mirror) as server:
        res = http_resources(tmp_path, server.url)
        assert materialize(res, [raw.klines]).success  # the warehouse file exists
        other = DAY + dt.timedelta(days=1)
        arrived, release = server.hold(ArchiveFile("klines", "BTCUSDT", other, interval="1m").checksum_relpath)
        outcome = []
        run = threading.Thread(target=lambda: outcome.append(materialize(res, [raw.klines], key(other))))
        run.start()
        try:
            assert arrived.wait(30), "the run never asked for the file"
            # Another process takes the write lock while the run waits for the server.
            probe = subprocess.run([sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).execute("
                                    "'CREATE TABLE probe AS SELECT 1')", str(tmp_path / "w.duckdb")],
                                   capture_output=True, text=True, timeout=60)
        finally:
            release.set()
            run.join(60)
        assert probe.returncode == 0, probe.stderr
        assert outcome and outcome[0].success
        assert rows(res, "raw.klines", other) == 1440


# ---- 5. a 418 ban and its Retry-After are remembered across steps and processes ------------------------
RAW_ASSETS = [raw.agg_trades, raw.klines, raw.mark_price_klines, raw.open_interest, raw.funding_rates]


def test_ban_is_respected_by_every_step_and_the_next_run(tmp_path, mirror):
    with ArchiveServer(mirror) as server:
        server.set_status_everywhere(418, {"Retry-After": "7200"})
        res = http_resources(tmp_path, server.url)
        result = materialize(res, RAW_ASSETS)
        assert not result.success
        assert len(server.log) == 1  # the first request; the other four steps sent nothing
        assert "banned by Binance" in failure_message(result)
        # A new run (in production: a new process) reads the remembered ban and sends nothing either.
        result = materialize(http_resources(tmp_path, server.url), [raw.klines])
        assert not result.success and len(server.log) == 1
        assert "not sent" in failure_message(result) and "http-bans.json" in failure_message(result)
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_remembered_ban_expires_and_is_shared_with_the_rest_client(tmp_path, mirror):
    import time

    from liq_pipeline.market.archive import ArchiveClient, RateLimited
    from liq_pipeline.market.ban import BanMemory
    from liq_pipeline.market.rest import FapiBanned, FapiClient

    path = tmp_path / "state" / "http-bans.json"
    spec = ArchiveFile("klines", "BTCUSDT", DAY, interval="1m")
    with ArchiveServer(mirror) as server:
        server.set_status_everywhere(418, {"Retry-After": "600"})
        first = FapiClient(base_url=server.url, ban_memory=BanMemory(path), max_retries=0)
        with pytest.raises(FapiBanned):
            first.premium_index("BTCUSDT")
        second = FapiClient(base_url=server.url, ban_memory=BanMemory(path), max_retries=0)
        with pytest.raises(FapiBanned, match="not sent"):
            second.premium_index("BTCUSDT")
        archive = ArchiveClient(base_url=server.url, cache_dir=tmp_path / "cache", ban_memory=BanMemory(path))
        with pytest.raises(RateLimited, match="not sent"):
            archive.fetch(spec)
        assert len(server.log) == 1
        server.set_status_everywhere(None)
        later = BanMemory(path, clock=lambda: time.time() + 601)  # the ban has run out
        assert later.active(server.url.split("//")[1]) is None
        fetched = ArchiveClient(base_url=server.url, cache_dir=tmp_path / "cache", ban_memory=later).fetch(spec)
        assert fetched.verified and len(server.log) == 3  # CHECKSUM and zip


# ---- 9. a missing .CHECKSUM is visible (an error when required); conflicting duplicates are reported ---
def test_missing_checksum_is_a_visible_warning_and_an_error_when_required(tmp_path, mirror):
    spec = ArchiveFile("klines", "BTCUSDT", DAY, interval="1m")
    (mirror / spec.checksum_relpath).unlink()
    res = mirror_resources(tmp_path, mirror)
    result = materialize(res, [raw.klines])
    assert result.success
    meta = result.asset_materializations_for_node("klines")[0].metadata
    assert meta["checksum_verified"].value is False and meta["unverified_files"].value == 1
    assert "no .CHECKSUM sidecar" in meta["warnings"].value
    strict = mirror_resources(tmp_path, mirror)
    strict["market"] = MarketSource(kind="mirror", mirror_dir=str(mirror), require_checksum=True)
    result = materialize(strict, [raw.klines])
    assert not result.success
    assert "LIQ_REQUIRE_CHECKSUM=1" in failure_message(result)


def test_missing_checksum_over_http_is_refused_when_required(tmp_path, mirror):
    from liq_pipeline.market.archive import ArchiveClient, ChecksumMissing

    spec = ArchiveFile("klines", "BTCUSDT", DAY, interval="1m")
    (mirror / spec.checksum_relpath).unlink()
    with ArchiveServer(mirror) as server:
        assert not ArchiveClient(base_url=server.url, cache_dir=tmp_path / "a").fetch(spec).verified
        with pytest.raises(ChecksumMissing, match="no BTCUSDT-1m-2026-01-05.zip.CHECKSUM"):
            ArchiveClient(base_url=server.url, cache_dir=tmp_path / "b", require_checksum=True).fetch(spec)
        assert not (tmp_path / "b" / spec.relpath).exists()


def test_conflicting_duplicate_trade_ids_are_counted_and_reported(tmp_path, mirror):
    from liq_pipeline.market.formats import AGG_TRADES_COLUMNS
    from liq_pipeline_tests.support.mirror_fixture import write_zip

    trades = [(i, 90000.0, 0.1, i, i, T0 + 1000 * i, "true") for i in range(1, 11)]
    trades += [(3, 90000.0, 0.1, 3, 3, T0 + 3000, "true"),  # an exact repeat: harmless
               (5, 91234.5, 0.1, 5, 5, T0 + 5000, "true"),  # same id, another price
               (7, 90000.0, 2.0, 7, 7, T0 + 6999, "false")]  # same id, another quantity, time and side
    write_zip(mirror, ArchiveFile("aggTrades", "BTCUSDT", DAY), AGG_TRADES_COLUMNS, trades)
    res = mirror_resources(tmp_path, mirror)
    result = materialize(res, [raw.agg_trades])
    assert result.success
    check = [e for e in result.get_asset_check_evaluations() if e.check_name == "agg_trade_ids_continuous_BTCUSDT"][0]
    assert not check.passed
    assert check.metadata["duplicate_ids"].value == 3 and check.metadata["conflicting_duplicate_ids"].value == 2
    meta = result.asset_materializations_for_node("agg_trades")[0].metadata
    assert "2 trade ids appear more than once with different contents" in meta["warnings"].value
    assert rows(res, "raw.agg_trades") == 10


# ---- 16.3. a range run reports every failing day; the score counts what the configuration needs ------
def write_metrics(mirror, day: dt.date, minutes: int, skip: set[int]) -> None:
    from liq_pipeline.market.formats import METRICS_COLUMNS
    from liq_pipeline_tests.support.mirror_fixture import write_zip

    start = dt.datetime.combine(day, dt.time())
    body = [((start + dt.timedelta(minutes=minutes * i)).strftime("%Y-%m-%d %H:%M:%S"), "BTCUSDT", 80_000 + i,
             7.2e9 + i, 1.2, 1.5, 1.1, 0.95) for i in range(1440 // minutes) if i not in skip]
    write_zip(mirror, ArchiveFile("metrics", "BTCUSDT", day), METRICS_COLUMNS, body)


def materialize_range(res, assets, first: dt.date, last: dt.date):
    return dg.materialize(assets, resources=res, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
                          tags={"dagster/asset_partition_range_start": f"{first.isoformat()}|BTCUSDT",
                                "dagster/asset_partition_range_end": f"{last.isoformat()}|BTCUSDT"})


def test_check_over_a_range_names_every_failing_day(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv("LIQ_SYMBOLS", "BTCUSDT")
    first, last = DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)
    write_metrics(mirror, first, 5, skip={100})
    write_metrics(mirror, last, 5, skip={7})
    result = materialize_range(mirror_resources(tmp_path, mirror), [raw.open_interest], first, last)
    assert result.success
    check = [e for e in result.get_asset_check_evaluations() if e.check_name == "open_interest_sampled_every_5m_BTCUSDT"][0]
    assert not check.passed
    assert check.metadata["failing_days"].value == f"BTCUSDT {first}, BTCUSDT {last}"
    assert check.description.startswith("2 of 3 partitions fail")
    assert f"BTCUSDT {last}: 287 OI samples" in check.metadata["failures"].value
    # Every symbol-day of the run with its result: the UI answers which symbol-day failed the check.
    results = check.metadata["results"].value
    assert f"| BTCUSDT | {DAY} | pass:" in results and f"| BTCUSDT | {last} | **fail**: 287 OI samples" in results


def test_data_quality_scores_only_the_inputs_the_configuration_needs(tmp_path, mirror, monkeypatch):
    from liq_pipeline.warehouse.data_quality import data_quality

    monkeypatch.setenv("LIQ_SYMBOLS", "BTCUSDT")
    first, last = DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)
    for day in (first, DAY, last):  # hourly open interest, one hour missing on DAY
        write_metrics(mirror, day, 60, skip={5} if day == DAY else set())
    res = mirror_resources(tmp_path, mirror)
    assert materialize_range(res, [raw.klines, raw.mark_price_klines, raw.open_interest], first, last).success
    days = [first, DAY, last]
    with res["duckdb"].get_connection() as con:
        klines_only = data_quality(con, "BTCUSDT", days, profile_source="klines")
        with_trades = data_quality(con, "BTCUSDT", days, profile_source="aggTrades")
    assert klines_only["open_interest_samples_per_day"] == 24
    assert klines_only["open_interest"] == pytest.approx(71 / 72)
    assert klines_only["score"] == pytest.approx(71 / 72) and "agg_trades" not in klines_only["scored"]
    assert with_trades["agg_trades"] == 0.0 and with_trades["score"] == 0.0  # no aggTrades were ingested


# ---- 8. a run's heatmap rows and its files succeed or fail together ------------------------------------
def test_heatmap_rows_and_report_succeed_or_fail_together(tmp_path, monkeypatch):
    import duckdb
    import numpy as np

    from liq_pipeline.assets.flow import flow_book
    from liq_pipeline.assets.heatmap import liquidation_heatmap
    from liq_pipeline.warehouse.schema import ensure_tables
    from liq_pipeline_tests.support import warehouse_rows as th

    monkeypatch.setenv("LIQ_DATA_DIR", str(tmp_path / "data"))
    db = tmp_path / "w.duckdb"
    day = th.DAY
    with duckdb.connect(str(db)) as c:
        th.insert_levels(c, day - dt.timedelta(days=1), [("long", 95_000, 5e6), ("short", 104_000, 6e6)])
        th.insert_distribution(c, day - dt.timedelta(days=1), long_share=0.6)
        close = 100_000 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.0008, 1440)))
        th.insert_candles(c, "raw.mark_price_klines", day, close, high=close * 1.0005, low=close * 0.9995)
        th.insert_candles(c, "raw.klines", day, close, high=close * 1.0007, low=close * 0.9993)
        th.insert_trades(c, day, close)
        th.insert_oi(c, day, 1e9 * (1 + 0.05 * np.sin(np.arange(288) / 20)))
    res = {"duckdb": DuckDBResource(database=str(db))}
    partition = key(day, th.SYMBOL)

    def heatmap_rows():
        with duckdb.connect(str(db), read_only=True) as c:
            if not table_exists(c, "model.liquidation_heatmap"):
                return []
            return c.execute("SELECT * FROM model.liquidation_heatmap ORDER BY ALL").fetchall()

    # A reports "folder" that cannot take files: the run fails before writing any row.
    reports = tmp_path / "data" / "reports"
    reports.parent.mkdir(parents=True)
    reports.write_text("not a folder")
    result = materialize(res, [liquidation_heatmap], partition)
    assert not result.success
    assert f"the reports folder {reports} does not accept files; nothing was written" in failure_message(result)
    assert heatmap_rows() == []

    # Rows from an earlier materialization, then a run whose pictures fail after its rows were written
    # (a disk that fills up while rendering): the earlier rows are put back.
    reports.unlink()
    with duckdb.connect(str(db)) as c:
        ensure_tables(c, "model.liquidation_heatmap")
        c.execute("""INSERT INTO model.liquidation_heatmap BY NAME SELECT ? AS symbol, ? AS day, 'hybrid' AS variant,
                     TIMESTAMP '2026-01-05 00:15:00' AS snapshot_time, 'long' AS side, 7 AS bin_id, 95000.0 AS price,
                     1e6 AS notional_usd""", [th.SYMBOL, day])
    before = heatmap_rows()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("liq_pipeline.plots.heatmap.heatmap_png", disk_full)
    result = materialize(res, [flow_book, liquidation_heatmap], partition)  # the flow variant's book first
    assert not result.success
    assert "No space left on device" in failure_message(result)
    assert heatmap_rows() == before
    from liq_pipeline.warehouse import answer_files as af  # and the answer file says what the rows say

    assert af.heatmap_answer(af.folder_for(db), th.SYMBOL, "hybrid", None).levels == [("long", 7, 95_000.0, 1e6)]


# ---- 7. importers validate every field and skip a bad file, continuing with the others ----------------
FORCE_ORDER_LINE = ('{{"e":"forceOrder","E":1736899205120,"o":{{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC",'
                    '"q":"{q}","p":"{p}","ap":"96012.40","X":"FILLED","l":"{q}","z":"{q}","T":{t}}}}}\n')


@pytest.mark.parametrize("name, text, expected", [
    ("a-out-of-range.jsonl", FORCE_ORDER_LINE.format(q="0.250", p="95990.10", t="99999999999999999"),
     "cannot read as forceorder"),
    ("b-nan-price.jsonl", FORCE_ORDER_LINE.format(q="0.250", p="NaN", t="1736899205117"),
     "price not a finite number > 0"),
    ("c-negative-quantity.jsonl", FORCE_ORDER_LINE.format(q="-0.250", p="95990.10", t="1736899205117"),
     "quantity not a finite number > 0"),
    ("d-bars.csv", "timestamp,symbol,long_usd,short_usd\n2025-01-15T00:00:00Z,BTCUSDT,1,inf\n",
     "short_usd not a finite number >= 0"),
    ("e-bars-year.csv", "timestamp,symbol,long_usd,short_usd\n1999-01-15T00:00:00Z,BTCUSDT,1,2\n",
     "bar_start outside 2019-01-01"),
    ("f-bars-symbol.csv", "timestamp,symbol,long_usd,short_usd\n2025-01-15T00:00:00Z,../ESC,1,2\n",
     "symbol that is not a Binance symbol"),
])
def test_bad_import_file_is_named_and_skipped_and_the_others_are_imported(tmp_path, name, text, expected):
    import duckdb

    from liq_pipeline.market import liquidation_imports as li

    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / name).write_text(text)
    (folder / "z-good.jsonl").write_text(FORCE_ORDER_LINE.format(q="0.250", p="95990.10", t="1736899205117"))
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        results, errors = li.import_liquidation_folder(con, folder)
        assert [r.rows for r in results] == [1] and results[0].source == "file:z-good.jsonl"
        assert len(errors) == 1 and str(folder / name) in errors[0] and expected in errors[0], errors
        assert con.execute("SELECT count(*), min(quantity) FROM raw.realized_liquidations").fetchone() == (1, 0.25)


def test_liq_import_liquidations_reports_the_bad_file_and_imports_the_rest(tmp_path, capsys):
    from liq_pipeline.cli import main as cli

    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "bad.jsonl").write_text(FORCE_ORDER_LINE.format(q="-1", p="95990.10", t="1736899205117"))
    (folder / "good.jsonl").write_text(FORCE_ORDER_LINE.format(q="0.250", p="95990.10", t="1736899205117"))
    code = cli.main(["import-liquidations", str(folder), "--warehouse", str(tmp_path / "w.duckdb")])
    out, err = capsys.readouterr()
    assert code != 0
    assert "good.jsonl: 1 rows" in out
    assert "bad.jsonl" in err and "quantity not a finite number > 0" in err
