"""Nothing wrong gets in (issue 28): a file whose own symbol, period, time grid, prices or cells do not fit its
partition is refused before anything is stored, and a zip that would expand beyond the archive's real sizes is
never extracted. Each case zips a hostile CSV under the target name with a regenerated CHECKSUM (so the
checksum passes), materializes through Dagster, and checks the stored rows afterwards."""

from __future__ import annotations

import datetime as dt
import hashlib
import zipfile

import pytest

from liq_pipeline.assets import raw
from liq_pipeline.market.formats import (
    AGG_TRADES_COLUMNS,
    FUNDING_RATE_COLUMNS,
    KLINES_COLUMNS,
    METRICS_COLUMNS,
    ArchiveFile,
)
from liq_pipeline_tests.support.mirror_fixture import write_day, write_funding_month, write_zip
from liq_pipeline_tests.support.raw_runs import DAY, failure_message, materialize, mirror_resources, rows

T0 = 1767571200000  # 2026-01-05 00:00 UTC


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "mirror"
    for day in (DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1)):
        write_day(root, "BTCUSDT", day, n_trades=50)
        write_day(root, "ETHUSDT", day, n_trades=50, price=3_000.0, seed=1)
    write_funding_month(root, "BTCUSDT", DAY.replace(day=1), days=31)
    return root


def stored(res, table: str, column: str) -> list:
    with res["duckdb"].get_connection() as con:
        return [r[0] for r in con.execute(f"SELECT {column} FROM {table} WHERE day = ? ORDER BY ALL", [DAY]).fetchall()]


# ---- case 1: a funding file of another month ----------------------------------------------------------
def test_funding_file_of_another_month_is_refused_and_keeps_the_stored_settlements(tmp_path, mirror):
    res = mirror_resources(tmp_path, mirror)
    assert materialize(res, [raw.funding_rates]).success
    before = stored(res, "raw.funding_rates", "funding_time")
    assert len(before) == 3
    january = DAY.replace(day=1)
    start = dt.datetime(2026, 1, 1) + dt.timedelta(days=31)  # every timestamp moved +31 days
    shifted = [(int((start + dt.timedelta(hours=8 * k)).replace(tzinfo=dt.UTC).timestamp() * 1000) + 1, 8, 0.0001)
               for k in range(93)]
    write_zip(mirror, ArchiveFile("fundingRate", "BTCUSDT", january, cadence="monthly"), FUNDING_RATE_COLUMNS, shifted)
    result = materialize(res, [raw.funding_rates])
    assert not result.success
    message = failure_message(result)
    assert "BTCUSDT-fundingRate-2026-01.zip" in message and "outside its month 2026-01" in message
    assert stored(res, "raw.funding_rates", "funding_time") == before


# ---- case 2: another symbol's file under this symbol's name --------------------------------------------
def _eth_under_btc_name(mirror, kind: str) -> None:
    spec = ArchiveFile(kind, "BTCUSDT", DAY, interval="1m" if kind == "klines" else None)
    eth = ArchiveFile(kind, "ETHUSDT", DAY, interval=spec.interval)
    with zipfile.ZipFile(mirror / eth.relpath) as z:
        text = z.read(eth.csv_name).decode()
    write_zip(mirror, spec, None, [tuple(line.split(",")) for line in text.strip().splitlines()])


@pytest.mark.parametrize("asset, table, column, kind", [
    (raw.agg_trades, "raw.agg_trades", "price", "aggTrades"),
    (raw.klines, "raw.klines", "close", "klines"),
])
def test_another_symbols_prices_are_refused_against_the_neighbouring_days(tmp_path, mirror, asset, table, column, kind):
    res = mirror_resources(tmp_path, mirror)
    for day in (DAY - dt.timedelta(days=1), DAY):
        assert materialize(res, [asset], partition=_key(day)).success
    before = stored(res, table, column)
    _eth_under_btc_name(mirror, kind)
    result = materialize(res, [asset])
    assert not result.success
    message = failure_message(result)
    assert f"BTCUSDT-{'1m' if kind == 'klines' else kind}-2026-01-05.zip" in message
    assert "another symbol's file" in message and "nothing stored" in message
    assert stored(res, table, column) == before


def test_metrics_file_naming_another_symbol_is_refused(tmp_path, mirror):
    res = mirror_resources(tmp_path, mirror)
    assert materialize(res, [raw.open_interest]).success
    before = stored(res, "raw.open_interest", "sum_open_interest")
    _eth_under_btc_name(mirror, "metrics")
    result = materialize(res, [raw.open_interest])
    assert not result.success
    message = failure_message(result)
    assert "BTCUSDT-metrics-2026-01-05.zip" in message and "its symbol column says ETHUSDT" in message
    assert stored(res, "raw.open_interest", "sum_open_interest") == before


def _key(day: dt.date):
    from liq_pipeline_tests.support.raw_runs import key

    return key(day)


# ---- case 3: a zip bomb --------------------------------------------------------------------------------
def test_zip_bomb_is_refused_before_extraction_and_leaves_no_temp_file(tmp_path, mirror, monkeypatch):
    res = mirror_resources(tmp_path, mirror)
    assert materialize(res, [raw.open_interest]).success
    before = stored(res, "raw.open_interest", "sum_open_interest")
    spec = ArchiveFile("metrics", "BTCUSDT", DAY)
    path = mirror / spec.relpath
    # 64 MiB of NUL bytes (about 64 KB zipped): the real ratio is about 4-5, this is about 1,000.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open(spec.csv_name, "w", force_zip64=True) as f:
        block = b"\0" * (1 << 20)
        for _ in range(64):
            f.write(block)
    (mirror / spec.checksum_relpath).write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {spec.file_name}")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    result = materialize(res, [raw.open_interest])
    assert not result.success
    message = failure_message(result)
    assert "BTCUSDT-metrics-2026-01-05.zip" in message and "compression ratio" in message
    assert "LIQ_MAX_ZIP_RATIO" in message
    assert [p for p in tmp.rglob("*") if p.is_file()] == []
    assert stored(res, "raw.open_interest", "sum_open_interest") == before


def test_archive_limits_are_settings_with_a_one_line_error(monkeypatch):
    from liq_pipeline.config import ConfigError, archive_limits

    monkeypatch.setenv("LIQ_MAX_CSV_MB", "0")
    with pytest.raises(ConfigError, match="LIQ_MAX_CSV_MB"):
        archive_limits()
    monkeypatch.setenv("LIQ_MAX_CSV_MB", "10")
    monkeypatch.setenv("LIQ_MAX_ZIP_RATIO", "20")
    assert archive_limits() == (10 << 20, 20.0)


def test_csv_larger_than_the_size_limit_is_refused(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv("LIQ_MAX_CSV_MB", "1")
    write_zip(mirror, ArchiveFile("aggTrades", "BTCUSDT", DAY), AGG_TRADES_COLUMNS,
              [(i, 90000.0 + (i % 97), 0.001 * (i % 13 + 1), i, i, T0 + i, "true") for i in range(40_000)])
    res = mirror_resources(tmp_path, mirror)
    result = materialize(res, [raw.agg_trades])
    assert not result.success
    assert "larger than the limit" in failure_message(result) and "LIQ_MAX_CSV_MB" in failure_message(result)


# ---- case 7: partial columns and one boolean rule --------------------------------------------------------
def test_metrics_with_open_interest_empty_on_some_rows_is_refused(tmp_path, mirror):
    res = mirror_resources(tmp_path, mirror)
    assert materialize(res, [raw.open_interest]).success
    before = stored(res, "raw.open_interest", "sum_open_interest")
    start = dt.datetime.combine(DAY, dt.time())
    body = []
    for i in range(288):
        ts = (start + dt.timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S")
        oi = "" if i % 3 == 0 else 80_000 + i
        body.append((ts, "BTCUSDT", oi, "" if oi == "" else oi * 90_000, 1.2, 1.5, 1.1, 0.95))
    write_zip(mirror, ArchiveFile("metrics", "BTCUSDT", DAY), METRICS_COLUMNS, body)
    result = materialize(res, [raw.open_interest])
    assert not result.success
    message = failure_message(result)
    assert "sum_open_interest is empty on 96 of 288 rows" in message and "line 2" in message
    assert stored(res, "raw.open_interest", "sum_open_interest") == before


@pytest.mark.parametrize("value", ["yes", "1", "t", "y", "no"])
@pytest.mark.parametrize("position", ["first", "repeated"])
def test_is_buyer_maker_other_than_true_or_false_is_refused_by_every_parse_path(tmp_path, mirror, value, position):
    """The fast path (ids increasing) and the deduplicating one (an id repeated) apply the same rule."""
    res = mirror_resources(tmp_path, mirror)
    assert materialize(res, [raw.agg_trades]).success
    ids = [1, 2, 3, 3] if position == "repeated" else [1, 2, 3, 4]
    body = [(i, 90000.0, 0.1, i, i, T0 + 1000 * n, value if n == 1 else "true") for n, i in enumerate(ids)]
    write_zip(mirror, ArchiveFile("aggTrades", "BTCUSDT", DAY), AGG_TRADES_COLUMNS, body)
    result = materialize(res, [raw.agg_trades])
    assert not result.success
    message = failure_message(result)
    assert "is_buyer_maker must be true or false" in message and "line 3" in message
    assert rows(res, "raw.agg_trades") == 50


# ---- case 10: klines off the interval's grid ----------------------------------------------------------------
def test_klines_shifted_off_the_minute_grid_are_refused(tmp_path, mirror):
    res = mirror_resources(tmp_path, mirror)
    assert materialize(res, [raw.klines]).success
    before = stored(res, "raw.klines", "open_time")
    shift = 30_000
    body = [(T0 + 60_000 * i + shift, 90000, 90010, 89990, 90000, 1, T0 + 60_000 * (i + 1) - 1 + shift, 0, 0, 0, 0, 0)
            for i in range(1439)]
    write_zip(mirror, ArchiveFile("klines", "BTCUSDT", DAY, interval="1m"), KLINES_COLUMNS, body)
    result = materialize(res, [raw.klines])
    assert not result.success
    message = failure_message(result)
    assert "BTCUSDT-1m-2026-01-05.zip" in message and "not on the 1m grid" in message
    assert "2026-01-05 00:00:30" in message
    assert stored(res, "raw.klines", "open_time") == before


def test_metrics_off_the_five_minute_grid_are_refused(tmp_path, mirror):
    start = dt.datetime.combine(DAY, dt.time()) + dt.timedelta(seconds=17)
    body = [((start + dt.timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S"), "BTCUSDT", 80_000, 7.2e9,
             1.2, 1.5, 1.1, 0.95) for i in range(287)]
    write_zip(mirror, ArchiveFile("metrics", "BTCUSDT", DAY), METRICS_COLUMNS, body)
    res = mirror_resources(tmp_path, mirror)
    result = materialize(res, [raw.open_interest])
    assert not result.success and "not on the 5m grid" in failure_message(result)


# ---- partly handled before: empty cells without a line number, a full temp folder without its path ------------
def test_empty_required_cell_is_named_with_its_line(tmp_path, mirror):
    res = mirror_resources(tmp_path, mirror)
    assert materialize(res, [raw.klines]).success
    body = [(T0 + 60_000 * i, 90000, 90010, 89990, "" if i == 3 else 90000, 1, T0 + 60_000 * (i + 1) - 1, 0, 0, 0, 0, 0)
            for i in range(1440)]
    write_zip(mirror, ArchiveFile("klines", "BTCUSDT", DAY, interval="1m"), KLINES_COLUMNS, body)
    result = materialize(res, [raw.klines])
    assert not result.success
    assert "line 5: close is empty" in failure_message(result)
    assert rows(res, "raw.klines") == 1440


def test_temp_folder_that_cannot_be_written_is_named_and_not_retried(tmp_path, mirror):
    """A file-size limit (RLIMIT_FSIZE) makes the extraction fail the way a full TMPDIR does."""
    import subprocess
    import sys

    code = f"""
import resource, signal, sys
from pathlib import Path
from liq_pipeline.market.archive import ArchiveClient, ExtractionFailed
from liq_pipeline.market.formats import ArchiveFile
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
client = ArchiveClient(mirror_dir=Path({str(mirror)!r}), cache_dir=Path({str(tmp_path / 'cache')!r}))
fetched = client.fetch(ArchiveFile("klines", "BTCUSDT", __import__("datetime").date(2026, 1, 5), interval="1m"))
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    client.extract_csv(fetched, Path({str(tmp_path / 'tmp')!r}))
except ExtractionFailed as e:
    print(e)
    sys.exit(3)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr[-800:]
    assert f"cannot extract its CSV into {tmp_path / 'tmp'}" in done.stdout and "TMPDIR" in done.stdout
    assert [p for p in (tmp_path / "tmp").iterdir()] == []  # the partial file was removed
