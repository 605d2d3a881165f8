"""ArchiveClient against a real local HTTP server and local mirrors: caching, checksums, gaps, retries,
rate limits and damaged zips (binance-data.md §1, §5.1)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import socket
import zipfile
from pathlib import Path

import pytest

from liq_pipeline.market.archive import (
    ArchiveClient,
    ArchiveUnavailable,
    ChecksumMismatch,
    CorruptArchive,
    FetchedFile,
    MalformedChecksum,
    MissingArchiveFile,
    NotYetPublished,
    RateLimited,
    _retry_after_s,
    available_from,
    is_recent,
    sha256_file,
)
from liq_pipeline.market.formats import AGG_TRADES_COLUMNS, FUNDING_RATE_COLUMNS, KLINES_COLUMNS, ArchiveFile
from liq_pipeline_tests.support.archive_server import ArchiveServer

TODAY = dt.date(2026, 1, 20)
OLD_DAY = dt.date(2026, 1, 5)
RECENT_DAY = TODAY - dt.timedelta(days=2)
T0 = 1767571200000  # 2026-01-05 00:00:00 UTC in ms
AGG_SPEC = ArchiveFile("aggTrades", "BTCUSDT", OLD_DAY)

AGG_CSV = "\n".join([
    ",".join(AGG_TRADES_COLUMNS),
    f"1,90000.1,0.500,10,12,{T0 + 1000},true",
    f"2,90000.5,0.010,13,13,{T0 + 2000},false",
    f"3,90001.0,1.250,14,20,{T0 + 3000},false",
]) + "\n"


# ---- fixtures and helpers -------------------------------------------------------------------------
def zip_bytes(member: str, text: str, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        z.writestr(member, text)
    return buf.getvalue()


def publish(root: Path, spec: ArchiveFile, data: bytes | None = None, checksum: str | None = "auto") -> bytes:
    """Write `spec`'s zip (and its CHECKSUM, in Binance's exact format) below `root`."""
    data = zip_bytes(spec.csv_name, AGG_CSV) if data is None else data
    path = root / spec.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if checksum == "auto":
        checksum = f"{hashlib.sha256(data).hexdigest()}  {spec.file_name}"
    if checksum is not None:
        (root / spec.checksum_relpath).write_text(checksum)
    return data


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def server(tmp_path):
    with ArchiveServer(tmp_path / "archive") as s:
        yield s


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def client(server, tmp_path, sleeps):
    with ArchiveClient(base_url=server.url, cache_dir=tmp_path / "cache", timeout_s=5, max_retries=3,
                       backoff_s=1.0, today=lambda: TODAY, sleep=sleeps) as c:
        yield c


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ---- HTTP: happy path and cache ---------------------------------------------------------------------
def test_download_verifies_caches_and_extracts_then_second_fetch_is_served_from_cache(server, client, tmp_path):
    data = publish(server.serve_dir, AGG_SPEC)

    fetched = client.fetch(AGG_SPEC)
    assert fetched == FetchedFile(AGG_SPEC, tmp_path / "cache" / AGG_SPEC.relpath,
                                  hashlib.sha256(data).hexdigest(), "download", True)
    assert fetched.zip_path.read_bytes() == data
    cached_sum = tmp_path / "cache" / AGG_SPEC.checksum_relpath
    assert cached_sum.read_text() == (server.serve_dir / AGG_SPEC.checksum_relpath).read_text()
    assert [r.path for r in server.log] == [AGG_SPEC.checksum_relpath, AGG_SPEC.relpath]
    assert not [p for p in files_under(tmp_path / "cache") if p.name.endswith(".part")]

    csv = client.extract_csv(fetched, tmp_path / "out")
    assert csv == tmp_path / "out" / "BTCUSDT-aggTrades-2026-01-05.csv"
    assert csv.read_text() == AGG_CSV

    server.clear_log()
    again = client.fetch(AGG_SPEC)
    assert again.source == "cache" and again.verified and again.sha256 == fetched.sha256
    assert server.log == []


def test_damaged_cached_zip_is_downloaded_again(server, client, tmp_path):
    data = publish(server.serve_dir, AGG_SPEC)
    fetched = client.fetch(AGG_SPEC)
    fetched.zip_path.write_bytes(data[:-10])  # e.g. a disk error after caching

    again = client.fetch(AGG_SPEC)
    assert again.source == "download" and again.zip_path.read_bytes() == data


def test_refresh_ignores_the_cache_and_picks_up_a_replaced_file(server, client):
    publish(server.serve_dir, AGG_SPEC)
    first = client.fetch(AGG_SPEC)
    new_data = publish(server.serve_dir, AGG_SPEC, zip_bytes(AGG_SPEC.csv_name, AGG_CSV + f"4,1.0,1.0,21,21,{T0 + 4000},true\n"))

    assert client.fetch(AGG_SPEC).sha256 == first.sha256  # cached copy, no network
    refreshed = client.fetch(AGG_SPEC, refresh=True)
    assert refreshed.source == "download" and refreshed.sha256 == hashlib.sha256(new_data).hexdigest()


def test_zip_without_checksum_is_accepted_unverified_and_not_cached_as_verified(server, client, tmp_path):
    publish(server.serve_dir, AGG_SPEC, checksum=None)

    fetched = client.fetch(AGG_SPEC)
    assert fetched.verified is False and fetched.source == "download"
    assert not (tmp_path / "cache" / AGG_SPEC.checksum_relpath).exists()
    server.clear_log()
    assert client.fetch(AGG_SPEC).source == "download"  # fetched again: it could not be verified
    assert len(server.requests_for(AGG_SPEC.relpath)) == 1


def test_html_instead_of_checksum_is_reported_as_malformed(server, client, tmp_path):
    publish(server.serve_dir, AGG_SPEC, checksum="<html><body>Access denied</body></html>")
    with pytest.raises(MalformedChecksum, match=r"CHECKSUM.*64 hex"):
        client.fetch(AGG_SPEC)
    assert files_under(tmp_path / "cache") == []


# ---- absent files ------------------------------------------------------------------------------------
def test_404_for_a_recent_day_is_not_yet_published(server, client):
    spec = ArchiveFile("aggTrades", "BTCUSDT", RECENT_DAY)
    with pytest.raises(NotYetPublished, match=spec.file_name) as e:
        client.fetch(spec)
    assert e.value.retryable and "try again later" in str(e.value)
    # Both the sidecar and the zip were asked for before deciding.
    assert {r.path for r in server.log} == {spec.relpath, spec.checksum_relpath}


def test_404_on_zip_and_checksum_for_an_old_day_is_missing(server, client, tmp_path):
    with pytest.raises(MissingArchiveFile, match=r"BTCUSDT-aggTrades-2026-01-05\.zip.*gaps") as e:
        client.fetch(AGG_SPEC)
    assert not e.value.retryable
    assert files_under(tmp_path / "cache") == []


def test_publication_dates_follow_binance_schedule():
    assert available_from(ArchiveFile("metrics", "BTCUSDT", OLD_DAY)) == OLD_DAY + dt.timedelta(days=1)
    # Monthly files: the first Monday of the following month (2026-02-02 is a Monday).
    jan = ArchiveFile("fundingRate", "BTCUSDT", dt.date(2026, 1, 1), "monthly")
    assert available_from(jan) == dt.date(2026, 2, 2)
    dec = ArchiveFile("fundingRate", "BTCUSDT", dt.date(2025, 12, 1), "monthly")
    assert available_from(dec) == dt.date(2026, 1, 5)
    assert is_recent(jan, dt.date(2026, 1, 31), 3)  # the current month
    assert is_recent(jan, dt.date(2026, 2, 4), 3)  # published on the 2nd, 3 days of lag
    assert not is_recent(jan, dt.date(2026, 2, 5), 3)
    day = ArchiveFile("aggTrades", "BTCUSDT", dt.date(2026, 1, 17))
    assert is_recent(day, TODAY, 3) and not is_recent(day, TODAY, 2)


# ---- retries -----------------------------------------------------------------------------------------
def test_500_then_200_succeeds_after_one_backoff(server, client, sleeps):
    publish(server.serve_dir, AGG_SPEC)
    server.fail_times(AGG_SPEC.relpath, 500, 1)

    fetched = client.fetch(AGG_SPEC)
    assert fetched.verified
    assert [r.status for r in server.requests_for(AGG_SPEC.relpath)] == [500, 200]
    assert sleeps == [1.0]


def test_persistent_500_raises_archive_unavailable_after_exponential_backoff(server, client, sleeps, tmp_path):
    publish(server.serve_dir, AGG_SPEC)
    server.set_status(AGG_SPEC.relpath, 503)

    with pytest.raises(ArchiveUnavailable, match=r"after 4 attempts \(last: HTTP 503\)") as e:
        client.fetch(AGG_SPEC)
    assert e.value.retryable
    assert len(server.requests_for(AGG_SPEC.relpath)) == 4  # 1 + max_retries
    assert sleeps == [1.0, 2.0, 4.0]
    assert not [p for p in files_under(tmp_path / "cache") if p.suffix == ".zip" or p.name.endswith(".part")]


def test_transfer_cut_mid_file_is_retried_and_leaves_no_partial_file(server, client, sleeps, tmp_path):
    data = publish(server.serve_dir, AGG_SPEC, zip_bytes(AGG_SPEC.csv_name, AGG_CSV * 2000))
    server.cut_connection(AGG_SPEC.relpath, 1)

    fetched = client.fetch(AGG_SPEC)
    assert fetched.zip_path.read_bytes() == data and sleeps == [1.0]
    assert len(server.requests_for(AGG_SPEC.relpath)) == 2
    assert [p.name for p in files_under(tmp_path / "cache")] == [AGG_SPEC.file_name, AGG_SPEC.file_name + ".CHECKSUM"]


def test_timeouts_are_retried_then_reported(server, tmp_path, sleeps):
    publish(server.serve_dir, AGG_SPEC)
    server.delay(AGG_SPEC.checksum_relpath, 1.0)
    c = ArchiveClient(base_url=server.url, cache_dir=tmp_path / "cache", timeout_s=0.2, max_retries=1,
                      backoff_s=0.5, today=lambda: TODAY, sleep=sleeps)
    with pytest.raises(ArchiveUnavailable, match=r"after 2 attempts.*Timeout"):
        c.fetch(AGG_SPEC)
    assert sleeps == [0.5]


def test_connection_refused_is_archive_unavailable(tmp_path, sleeps):
    with socket.socket() as s:  # a port that nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = ArchiveClient(base_url=f"http://127.0.0.1:{port}", cache_dir=tmp_path / "cache", max_retries=2,
                      today=lambda: TODAY, sleep=sleeps)
    with pytest.raises(ArchiveUnavailable, match="ConnectionError"):
        c.fetch(AGG_SPEC)
    assert sleeps == [1.0, 2.0]


# ---- checksums and damaged zips ----------------------------------------------------------------------
def test_wrong_checksum_raises_and_leaves_nothing_in_the_cache(server, client, tmp_path):
    data = publish(server.serve_dir, AGG_SPEC)
    server.corrupt(AGG_SPEC.relpath)

    with pytest.raises(ChecksumMismatch, match="nothing was cached") as e:
        client.fetch(AGG_SPEC)
    assert e.value.expected == hashlib.sha256(data).hexdigest() and e.value.actual != e.value.expected
    assert files_under(tmp_path / "cache") == []


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _crc_error(data: bytes) -> bytes:
    # A stored (uncompressed) member: flip one CSV byte so only the CRC-32 check can notice.
    i = data.index(b"90000.5")
    return data[:i] + b"8" + data[i + 1:]


def _garbled_deflate(data: bytes) -> bytes:
    # Overwrite the start of the deflate stream (after the 30-byte local header and the member name).
    start = 30 + len(AGG_SPEC.csv_name)
    return data[:start] + b"\xff" * 8 + data[start + 8:]


@pytest.mark.parametrize(("damage", "compression"), [
    (_truncated, zipfile.ZIP_DEFLATED),
    (_crc_error, zipfile.ZIP_STORED),
    (_garbled_deflate, zipfile.ZIP_DEFLATED),
    (lambda data: b"<html>503 Service Unavailable</html>", zipfile.ZIP_DEFLATED),
])
def test_damaged_zip_with_matching_checksum_raises_corrupt_archive_on_extract(server, client, tmp_path, damage,
                                                                             compression):
    bad = damage(zip_bytes(AGG_SPEC.csv_name, AGG_CSV, compression))
    publish(server.serve_dir, AGG_SPEC, bad)  # the CHECKSUM is of the damaged bytes: fetch succeeds

    fetched = client.fetch(AGG_SPEC)
    assert fetched.verified
    with pytest.raises(CorruptArchive, match=AGG_SPEC.file_name):
        client.extract_csv(fetched, tmp_path / "out")
    assert files_under(tmp_path / "out") == []  # no partial CSV left behind


def test_zip_without_csv_member_raises_corrupt_archive(server, client, tmp_path):
    publish(server.serve_dir, AGG_SPEC, zip_bytes("README.txt", "nothing here"))
    with pytest.raises(CorruptArchive, match=r"expected one CSV member.*README\.txt"):
        client.fetch_csv(AGG_SPEC, tmp_path / "out")


def test_only_csv_member_under_another_name_is_extracted(server, client, tmp_path):
    publish(server.serve_dir, AGG_SPEC, zip_bytes("renamed.csv", AGG_CSV))
    fetched, csv = client.fetch_csv(AGG_SPEC, tmp_path / "out")
    assert csv.name == "renamed.csv" and csv.read_text() == AGG_CSV and fetched.verified


# ---- rate limits -------------------------------------------------------------------------------------
def test_429_with_retry_after_waits_that_long_then_succeeds(server, client, sleeps):
    publish(server.serve_dir, AGG_SPEC)
    server.fail_times(AGG_SPEC.relpath, 429, 1, headers={"Retry-After": "2"})

    assert client.fetch(AGG_SPEC).verified
    assert sleeps == [2.0]
    assert [r.status for r in server.requests_for(AGG_SPEC.relpath)] == [429, 200]


def test_429_without_retry_after_waits_at_most_to_the_next_minute(server, client, sleeps):
    publish(server.serve_dir, AGG_SPEC)
    server.fail_times(AGG_SPEC.checksum_relpath, 429, 1)

    assert client.fetch(AGG_SPEC).verified
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 60


def test_429_asking_for_more_than_max_wait_raises_without_waiting(server, client, sleeps):
    publish(server.serve_dir, AGG_SPEC)
    server.set_status(AGG_SPEC.checksum_relpath, 429, headers={"Retry-After": "600"})

    with pytest.raises(RateLimited, match="600") as e:
        client.fetch(AGG_SPEC)
    assert e.value.retry_after_s == 600 and e.value.retryable
    assert sleeps == [] and len(server.log) == 1


def test_418_ban_raises_immediately_without_any_retry(server, client, sleeps):
    publish(server.serve_dir, AGG_SPEC)
    server.set_status(AGG_SPEC.checksum_relpath, 418, headers={"Retry-After": "7200"})

    with pytest.raises(RateLimited, match=r"418.*banned.*7200 s") as e:
        client.fetch(AGG_SPEC)
    assert e.value.retry_after_s == 7200
    assert sleeps == [] and len(server.log) == 1


def test_418_without_retry_after_reports_the_shortest_documented_ban(server, client, sleeps):
    server.set_status(AGG_SPEC.checksum_relpath, 418)
    with pytest.raises(RateLimited) as e:
        client.fetch(AGG_SPEC)
    assert e.value.retry_after_s == 120 and sleeps == []


def test_retry_after_accepts_seconds_and_http_dates():
    now = dt.datetime(2026, 1, 20, 12, 0, 0, tzinfo=dt.UTC).timestamp()
    assert _retry_after_s("5", now) == 5.0
    assert _retry_after_s("Tue, 20 Jan 2026 12:00:30 GMT", now) == 30.0
    assert _retry_after_s(None, now) is None and _retry_after_s("soon", now) is None


# ---- mirror mode -------------------------------------------------------------------------------------
def mirror_client(mirror: Path, tmp_path: Path) -> ArchiveClient:
    # No server: any network use would fail with a connection error.
    return ArchiveClient(base_url="http://127.0.0.1:9", cache_dir=tmp_path / "cache", mirror_dir=mirror,
                         max_retries=0, today=lambda: TODAY, sleep=Sleeps())


def test_mirror_reads_in_place_and_verifies_the_sidecar(tmp_path):
    mirror = tmp_path / "mirror"
    data = publish(mirror, AGG_SPEC)
    c = mirror_client(mirror, tmp_path)

    fetched, csv = c.fetch_csv(AGG_SPEC, tmp_path / "out")
    assert fetched == FetchedFile(AGG_SPEC, mirror / AGG_SPEC.relpath, hashlib.sha256(data).hexdigest(),
                                  "mirror", True)
    assert csv.read_text() == AGG_CSV
    assert files_under(tmp_path / "cache") == []  # no copy


def test_mirror_without_sidecar_is_accepted_unverified(tmp_path):
    mirror = tmp_path / "mirror"
    publish(mirror, AGG_SPEC, checksum=None)
    fetched = mirror_client(mirror, tmp_path).fetch(AGG_SPEC)
    assert fetched.verified is False and fetched.sha256 == sha256_file(mirror / AGG_SPEC.relpath)


def test_mirror_checksum_mismatch_raises_and_keeps_the_users_file(tmp_path):
    mirror = tmp_path / "mirror"
    publish(mirror, AGG_SPEC, checksum=f"{'0' * 64}  {AGG_SPEC.file_name}")
    with pytest.raises(ChecksumMismatch, match=str(mirror / AGG_SPEC.relpath).replace("\\", "\\\\")):
        mirror_client(mirror, tmp_path).fetch(AGG_SPEC)
    assert (mirror / AGG_SPEC.relpath).exists()


def test_mirror_missing_file_is_missing_or_not_yet_published_by_date(tmp_path):
    mirror = tmp_path / "mirror"
    c = mirror_client(mirror, tmp_path)
    with pytest.raises(MissingArchiveFile, match=str(mirror / AGG_SPEC.relpath).replace("\\", "\\\\")):
        c.fetch(AGG_SPEC)
    with pytest.raises(NotYetPublished):
        c.fetch(ArchiveFile("aggTrades", "BTCUSDT", RECENT_DAY))


# ---- file naming -------------------------------------------------------------------------------------
def test_monthly_funding_rate_file_is_fetched_from_the_monthly_path(server, client, tmp_path):
    spec = ArchiveFile("fundingRate", "BTCUSDT", dt.date(2025, 12, 1), "monthly")
    csv_text = ",".join(FUNDING_RATE_COLUMNS) + "\n1764547200001,8,0.00005703\n"
    publish(server.serve_dir, spec, zip_bytes(spec.csv_name, csv_text))

    fetched, csv = client.fetch_csv(spec, tmp_path / "out")
    assert server.log[-1].path == "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2025-12.zip"
    assert csv.name == "BTCUSDT-fundingRate-2025-12.csv" and csv.read_text() == csv_text
    assert fetched.verified

    current = ArchiveFile("fundingRate", "BTCUSDT", dt.date(2026, 1, 1), "monthly")
    with pytest.raises(NotYetPublished, match="BTCUSDT-fundingRate-2026-01.zip"):
        client.fetch(current)


def test_kline_file_is_fetched_from_the_interval_folder(server, client, tmp_path):
    spec = ArchiveFile("klines", "BTCUSDT", OLD_DAY, interval="1m")
    row = f"{T0},90000.0,90010.0,89990.0,90005.0,12.5,{T0 + 59_999},1125000.0,100,6.0,540000.0,0"
    csv_text = ",".join(KLINES_COLUMNS) + "\n" + row + "\n"
    publish(server.serve_dir, spec, zip_bytes(spec.csv_name, csv_text))

    _, csv = client.fetch_csv(spec, tmp_path / "out")
    assert [r.path for r in server.log] == [
        "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2026-01-05.zip.CHECKSUM",
        "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2026-01-05.zip",
    ]
    assert csv.name == "BTCUSDT-1m-2026-01-05.csv" and csv.read_text() == csv_text
