"""Client for the Binance bulk archive (data.binance.vision) and for local mirrors in the same layout.

Fetches one zip with its SHA-256 `.CHECKSUM` sidecar, verifies it, caches it atomically, and extracts
its CSV by streaming. Every failure is a specific `ArchiveError` that says which file and what to do
(binance-data.md §1: layout, publication lag, gaps, CHECKSUM format; §5.1: 429/418 handling).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import math
import os
import re
import tempfile
import time
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import requests

from liq_pipeline import config
from liq_pipeline.market.ban import BanMemory, bounded_wait_s
from liq_pipeline.market.formats import ArchiveFile

#: Read and hash in 1 MiB chunks: large enough to keep Python overhead negligible on 110 MB files.
CHUNK_BYTES = 1 << 20
#: Decompress a zip member in 64 KiB chunks (as `shutil.copyfileobj` does): each 1 MiB chunk was a new
#: allocation that glibc maps and the kernel zero-fills, 139 ms of system CPU for a 1.6 M-trade day's 85 MB
#: CSV against 18 ms (the extraction 372 -> 296 ms of CPU, as fast as `zipfile.extract`; issue 29).
EXTRACT_CHUNK_BYTES = 64 << 10
USER_AGENT = "liq_pipeline/0.1 (Binance archive client)"
#: Shortest IP ban Binance documents after ignoring 429s (binance-data.md §5.1): the wait we report on a
#: 418 that carries no Retry-After.
MIN_BAN_S = 120.0
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

SOURCE_MIRROR = "mirror"
SOURCE_CACHE = "cache"
SOURCE_DOWNLOAD = "download"

T = TypeVar("T")


# ---- errors ---------------------------------------------------------------------------------------
class ArchiveError(Exception):
    """Base of every archive failure. `retryable` says whether trying again later can succeed."""

    retryable = False


class NotYetPublished(ArchiveError):
    """The file is absent, but its period is too recent for Binance to have published it yet."""

    retryable = True


class MissingArchiveFile(ArchiveError):
    """The file is absent for a period that should have been published: a known archive gap."""


class ChecksumMismatch(ArchiveError):
    """The zip's SHA-256 differs from its CHECKSUM sidecar."""

    def __init__(self, message: str, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class MalformedChecksum(ArchiveError):
    """A CHECKSUM sidecar does not start with 64 hex characters (e.g. an HTML error page)."""


class ChecksumMissing(ArchiveError):
    """No .CHECKSUM sidecar next to a zip while checksums are required (LIQ_REQUIRE_CHECKSUM=1)."""


class CorruptArchive(ArchiveError):
    """Not a zip, truncated, a CRC error, or no CSV member."""


class RateLimited(ArchiveError):
    """HTTP 429 (slow down) or 418 (IP banned). `retry_after_s` is the wait before any new request."""

    retryable = True

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ArchiveTooLarge(CorruptArchive):
    """A zip member larger, or compressed more, than any real archive file (a zip bomb): never extracted."""


class ExtractionFailed(ArchiveError):
    """The CSV could not be written to the temp folder (full, read-only, missing): names the folder."""


class SourceNotAnswering(ArchiveError):
    """A file is absent and so are its neighbouring periods and the same day of other kinds: the archive URL,
    the mirror folder or the symbol is probably wrong, so nothing is recorded as 'never published'."""


class AbsentFileKeptRows(ArchiveError):
    """A file is absent although its partition holds rows from an earlier ingest: the rows are kept."""


class ArchiveUnavailable(ArchiveError):
    """5xx answers, timeouts or connection errors that outlasted every retry."""

    retryable = True


@dataclass(frozen=True)
class FetchedFile:
    """A zip on local disk. `sha256` is the digest of `zip_path` (lowercase hex); `verified` is True when it
    matched a CHECKSUM sidecar; `source` is "mirror", "cache" or "download"."""

    spec: ArchiveFile
    zip_path: Path
    sha256: str
    source: str
    verified: bool


# ---- plain helpers --------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    """SHA-256 of a file, lowercase hex, read in 1 MiB chunks."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK_BYTES)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def parse_checksum(text: str, where: str) -> str:
    """The digest of a GNU `sha256sum` line (`<64 hex><two spaces><name>`, with or without a newline).

    Binance writes lowercase hex (binance-data.md §1.4); uppercase is accepted and lowered.
    """
    fields = text.split()
    digest = fields[0].lower() if fields else ""
    if not _SHA256_RE.match(digest):
        preview = text[:80].replace("\n", "\\n")
        raise MalformedChecksum(
            f"{where}: not a sha256sum line (expected 64 hex characters first, got {preview!r}); "
            "delete it or fetch it again"
        )
    return digest


def available_from(spec: ArchiveFile) -> dt.date:
    """First UTC date Binance is expected to have published `spec` (binance-data.md §1.3).

    Daily files appear the next day; monthly files on the first Monday of the following month.
    """
    if spec.cadence == "daily":
        return spec.period + dt.timedelta(days=1)
    first_next = (spec.period.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return first_next + dt.timedelta(days=(7 - first_next.weekday()) % 7)


def is_recent(spec: ArchiveFile, today: dt.date, publication_lag_days: int) -> bool:
    """True when an absent `spec` may simply not be published yet: today is before its expected
    publication date plus `publication_lag_days` of observed delay (the archive runs ~1.5-2 days late)."""
    return today < available_from(spec) + dt.timedelta(days=publication_lag_days)


def _retry_after_s(header: str | None, now: float) -> float | None:
    """`Retry-After` in seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3), at most the longest
    ban Binance documents (ban.MAX_BAN_S); None when absent or unreadable (NaN, negative, neither form)."""
    if header is None or not header.strip():
        return None
    value = header.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = when.timestamp() - now
    if math.isnan(seconds) or (seconds < 0 and not value[:1].isalpha()):
        return None
    return bounded_wait_s(seconds)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(Path(tmp))
        raise


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


# ---- client ---------------------------------------------------------------------------------------
class ArchiveClient:
    """Fetch archive zips from data.binance.vision (cached under `cache_dir`) or from `mirror_dir`.

    With `mirror_dir` set, files are read in place from that folder (no network, no copy). Otherwise they
    are downloaded from `base_url` into `cache_dir/<relpath>` and verified against their CHECKSUM.
    `today` and `sleep` are injectable so that tests can pin the date and skip the waits.
    """

    def __init__(
        self,
        base_url: str = config.BINANCE_ARCHIVE_URL,
        cache_dir: Path | None = None,
        mirror_dir: Path | None = None,
        timeout_s: float = 30,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_wait_s: float = 120,
        publication_lag_days: int = 3,
        session: requests.Session | None = None,
        today: Callable[[], dt.date] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        ban_memory: BanMemory | None = None,
        require_checksum: bool = False,
        limits: tuple[int, float] | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, not {timeout_s}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {max_retries}")
        if backoff_s < 0 or max_wait_s < 0 or publication_lag_days < 0:
            raise ValueError("backoff_s, max_wait_s and publication_lag_days must be >= 0")
        self.base_url = base_url.rstrip("/")
        # Resolved here, not as a default argument, so LIQ_DATA_DIR set after import is honoured.
        self.cache_dir = Path(cache_dir) if cache_dir is not None else config.data_dir() / "cache"
        self.mirror_dir = Path(mirror_dir) if mirror_dir is not None else None
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.publication_lag_days = publication_lag_days
        self.today = today or _utc_today
        self.sleep = sleep
        #: Where a 418 ban is remembered across steps and processes (None: only within this client).
        self.ban_memory = ban_memory
        #: Refuse a zip without a .CHECKSUM sidecar (else it is used, flagged `verified=False`).
        self.require_checksum = require_checksum
        #: (largest CSV of a daily file in bytes, largest compression ratio): config.archive_limits().
        self.max_csv_bytes, self.max_zip_ratio = limits if limits is not None else config.archive_limits()
        #: Files asked for in a row that the source did not have (reset by any file found): many in a row
        #: point at a wrong URL, mirror folder or symbol rather than at archive gaps.
        self.absent_in_a_row = 0
        self._own_session = session is None
        self.session = session or requests.Session()
        # Identify ourselves unless the caller's session already set its own agent.
        if self.session.headers.get("User-Agent", "").startswith("python-requests") or self._own_session:
            self.session.headers["User-Agent"] = USER_AGENT

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def __enter__(self) -> ArchiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url_for(self, spec: ArchiveFile) -> str:
        return f"{self.base_url}/{spec.relpath}"

    @property
    def source_label(self) -> str:
        """Where files come from, for messages: the mirror folder or the base URL."""
        return f"mirror folder {self.mirror_dir}" if self.mirror_dir is not None else f"archive URL {self.base_url}"

    def location(self, spec: ArchiveFile) -> str:
        """Where `spec` is looked for: its mirror path or its URL."""
        return str(self.mirror_dir / spec.relpath) if self.mirror_dir is not None else self.url_for(spec)

    def exists(self, spec: ArchiveFile) -> bool:
        """Whether the source has `spec`'s zip (a HEAD request over HTTP; no download, no cache)."""
        if self.mirror_dir is not None:
            found = self._inside(self.mirror_dir, spec.relpath).is_file()
        else:
            found = self._get(self.url_for(spec), lambda r: True, method="HEAD") is not None
        self._count_absent(found)
        return found

    # ---- public API -------------------------------------------------------------------------------
    def fetch(self, spec: ArchiveFile, refresh: bool = False) -> FetchedFile:
        """The zip of `spec` on local disk, checksum-verified whenever a CHECKSUM exists.

        `refresh=True` ignores the cache (to pick up a file Binance replaced, binance-data.md §1.3).
        Raises NotYetPublished / MissingArchiveFile when absent, ChecksumMismatch, MalformedChecksum,
        RateLimited or ArchiveUnavailable.
        """
        if self.mirror_dir is not None:
            fetched = self._fetch_mirror(spec)
        else:
            fetched = None if refresh else self._cached(spec)
            if fetched is None:
                fetched = self._download(spec)
        self._count_absent(True)
        return fetched

    def _count_absent(self, found: bool) -> None:
        self.absent_in_a_row = 0 if found else self.absent_in_a_row + 1

    @staticmethod
    def _inside(root: Path, relpath: str) -> Path:
        """`root/relpath`, refusing a path that leaves `root` (a symbol like `../../x` must never write or
        read outside the data folder)."""
        path = root / relpath
        if ".." in Path(relpath).parts or not path.resolve().is_relative_to(root.resolve()):
            raise ArchiveError(f"{relpath!r} leaves {root}: refusing a path built from an invalid symbol")
        return path

    def extract_csv(self, fetched: FetchedFile, dest_dir: Path) -> Path:
        """Stream the zip's CSV member (`spec.csv_name`, else its only `.csv`) to `dest_dir`; returns its path.

        Raises CorruptArchive for a file that is not a zip, is truncated, fails its CRC, or has no single
        CSV member. A partial output file is never left behind.
        """
        dest_dir = Path(dest_dir)
        name = fetched.spec.file_name
        try:
            dest_dir.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(fetched.zip_path) as zf:
                member = self._csv_member(zf, fetched)
                limit = self._check_size(member, fetched)
                out = dest_dir / Path(member.filename).name
                fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{out.name}.", suffix=".part")
                try:
                    # zipfile checks the CRC-32 when the member has been read to its end; the byte count is
                    # checked as it goes too, so a member whose header under-states its size stops at the limit.
                    written = 0
                    with zf.open(member) as src, os.fdopen(fd, "wb") as dst:
                        while chunk := src.read(EXTRACT_CHUNK_BYTES):
                            written += len(chunk)
                            if written > limit:
                                raise ArchiveTooLarge(f"{name} ({fetched.zip_path}): its CSV expands beyond "
                                                      f"{limit:,} bytes, more than its header declares; not used")
                            dst.write(chunk)
                    os.replace(tmp, out)
                except BaseException:
                    _unlink_quietly(Path(tmp))
                    raise
        except zipfile.BadZipFile as e:
            raise CorruptArchive(f"{name} ({fetched.zip_path}): not a valid zip or CRC error ({e}); "
                                 f"{self._corrupt_advice(fetched)}") from e
        except (EOFError, zlib.error) as e:
            raise CorruptArchive(f"{name} ({fetched.zip_path}): truncated or damaged compressed data ({e}); "
                                 f"{self._corrupt_advice(fetched)}") from e
        except NotImplementedError as e:  # e.g. an unsupported compression method
            raise CorruptArchive(f"{name} ({fetched.zip_path}): {e}") from e
        except OSError as e:  # a full or read-only temp folder: retrying the step cannot help
            raise ExtractionFailed(
                f"{name}: cannot extract its CSV into {dest_dir} ({e.strerror or e}); free space there or point "
                "TMPDIR at a folder with room (a daily aggTrades CSV is about 110 MB)") from e
        return out

    def _check_size(self, member: zipfile.ZipInfo, fetched: FetchedFile) -> int:
        """The most bytes `member` may expand to; ArchiveTooLarge, before anything is extracted, when its
        declared size exceeds the limit (31 times the daily one for a monthly file) or its compression ratio
        is beyond any real archive file's (a zip bomb)."""
        name = fetched.spec.file_name
        limit = self.max_csv_bytes * (31 if fetched.spec.cadence == "monthly" else 1)
        if member.file_size > limit:
            raise ArchiveTooLarge(
                f"{name} ({fetched.zip_path}): its CSV would be {member.file_size:,} bytes, larger than the limit "
                f"of {limit:,} ({fetched.spec.cadence} file; LIQ_MAX_CSV_MB={self.max_csv_bytes >> 20} per day); "
                "not extracted. Raise LIQ_MAX_CSV_MB if this file is genuine")
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > config.ZIP_RATIO_FLOOR_BYTES and ratio > self.max_zip_ratio:
            raise ArchiveTooLarge(
                f"{name} ({fetched.zip_path}): compression ratio {ratio:,.0f} ({member.file_size:,} bytes from "
                f"{member.compress_size:,}), beyond the limit of {self.max_zip_ratio:g} (LIQ_MAX_ZIP_RATIO; real "
                "archive CSVs compress about 2.5-5 times): a zip bomb or a damaged file; not extracted")
        return limit

    def fetch_csv(self, spec: ArchiveFile, dest_dir: Path) -> tuple[FetchedFile, Path]:
        """`fetch` then `extract_csv`."""
        fetched = self.fetch(spec)
        return fetched, self.extract_csv(fetched, dest_dir)

    # ---- mirror -----------------------------------------------------------------------------------
    def _fetch_mirror(self, spec: ArchiveFile) -> FetchedFile:
        assert self.mirror_dir is not None
        zip_path = self._inside(self.mirror_dir, spec.relpath)
        sum_path = self.mirror_dir / spec.checksum_relpath
        if not zip_path.is_file():
            raise self._absent(spec, f"mirror file {zip_path}")
        actual = sha256_file(zip_path)
        if not sum_path.is_file():
            self._unverified(spec, f"mirror file {zip_path}")
            return FetchedFile(spec, zip_path, actual, SOURCE_MIRROR, verified=False)
        expected = parse_checksum(sum_path.read_text(encoding="ascii", errors="replace"), str(sum_path))
        if actual != expected:
            # The mirror belongs to the user: report it, never delete it.
            raise ChecksumMismatch(
                f"{zip_path}: sha256 {actual} does not match its CHECKSUM {expected}; the mirror copy is "
                "damaged or stale: download or regenerate this file and its .CHECKSUM",
                expected, actual,
            )
        return FetchedFile(spec, zip_path, actual, SOURCE_MIRROR, verified=True)

    # ---- HTTP + cache -----------------------------------------------------------------------------
    def _cached(self, spec: ArchiveFile) -> FetchedFile | None:
        """A cached zip whose digest matches its cached CHECKSUM, else None (a bad pair is removed)."""
        zip_path = self._inside(self.cache_dir, spec.relpath)
        sum_path = self.cache_dir / spec.checksum_relpath
        if not (zip_path.is_file() and sum_path.is_file()):
            return None
        try:
            expected = parse_checksum(sum_path.read_text(encoding="ascii", errors="replace"), str(sum_path))
        except MalformedChecksum:
            expected = None
        actual = sha256_file(zip_path)
        if actual == expected:
            return FetchedFile(spec, zip_path, actual, SOURCE_CACHE, verified=True)
        # Damaged cache (disk error, interrupted external copy): drop both so nothing corrupt stays cached.
        _unlink_quietly(zip_path)
        _unlink_quietly(sum_path)
        return None

    def _download(self, spec: ArchiveFile) -> FetchedFile:
        url = self.url_for(spec)
        sum_url = url + ".CHECKSUM"
        zip_path = self._inside(self.cache_dir, spec.relpath)
        sum_path = self.cache_dir / spec.checksum_relpath
        zip_path.parent.mkdir(parents=True, exist_ok=True)

        sum_text = self._get(sum_url, lambda r: r.content.decode("ascii", errors="replace"))
        expected = parse_checksum(sum_text, sum_url) if sum_text is not None else None

        got = self._get(url, lambda r: self._stream_to_temp(r, zip_path))
        if got is None:
            detail = "its CHECKSUM exists but the zip does not" if expected else "zip and CHECKSUM both 404"
            raise self._absent(spec, f"{url} ({detail})")
        if expected is None and self.require_checksum:
            _unlink_quietly(got[0])
            self._unverified(spec, url)
        tmp, actual = got
        if expected is not None and actual != expected:
            _unlink_quietly(tmp)
            raise ChecksumMismatch(
                f"{url}: downloaded sha256 {actual} does not match its CHECKSUM {expected}; nothing was "
                "cached. Fetch again; if it persists, Binance replaced the file or the copy is bad",
                expected, actual,
            )
        try:
            os.replace(tmp, zip_path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        if expected is not None:
            _write_text_atomic(sum_path, sum_text)  # type: ignore[arg-type]
        else:
            # No sidecar published: keep the zip but no CHECKSUM, so the next fetch downloads again
            # (and verifies, if Binance has added the CHECKSUM by then).
            _unlink_quietly(sum_path)
        return FetchedFile(spec, zip_path, actual, SOURCE_DOWNLOAD, verified=expected is not None)

    def _stream_to_temp(self, response: requests.Response, zip_path: Path) -> tuple[Path, str]:
        """Write the body to a temp file beside `zip_path` (same filesystem, so os.replace is atomic),
        hashing as it goes. The temp file is removed if the transfer fails."""
        fd, tmp = tempfile.mkstemp(dir=zip_path.parent, prefix=f".{zip_path.name}.", suffix=".part")
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                    h.update(chunk)
                    f.write(chunk)
        except BaseException:
            _unlink_quietly(Path(tmp))
            raise
        return Path(tmp), h.hexdigest()

    def _get(self, url: str, consume: Callable[[requests.Response], T], method: str = "GET") -> T | None:
        """GET `url` and hand a 200 response to `consume`; None on 404.

        Retries 5xx, 408, timeouts and connection errors (also mid-body) with exponential backoff
        `backoff_s * 2**attempt`; waits out 429 per Retry-After or until the next minute boundary
        (binance-data.md §5.1); raises RateLimited at once on 418 or when the wait exceeds `max_wait_s`.
        """
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            wait = self.backoff_s * 2**attempt
            self._refuse_if_banned(url)
            try:
                with self.session.request(method, url, stream=True, timeout=self.timeout_s) as response:
                    status = response.status_code
                    if status == 200:
                        return consume(response)
                    if status == 404:
                        return None
                    if status in (418, 429):
                        wait = self._rate_limit_wait(url, response, attempt)
                        last_problem = f"HTTP {status}"
                    elif status >= 500 or status == 408:
                        last_problem = f"HTTP {status}"
                    else:
                        raise ArchiveError(f"{url}: unexpected HTTP {status} {response.reason}; check base_url "
                                           "and the file path")
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
                last_problem = f"{type(e).__name__}: {e}"
            if attempt < self.max_retries:
                self.sleep(wait)
        # 418/429 never get here: _rate_limit_wait raises on the last attempt.
        raise ArchiveUnavailable(
            f"{url}: failed after {self.max_retries + 1} attempts (last: {last_problem}); the archive or the "
            "network is down, re-run later"
        )

    def _refuse_if_banned(self, url: str) -> None:
        """RateLimited without sending anything while a remembered 418 ban on this host lasts."""
        if self.ban_memory is None:
            return
        ban = self.ban_memory.active(urllib.parse.urlsplit(url).netloc)
        if ban is not None:
            wait = ban.remaining_s(self.ban_memory.clock())
            raise RateLimited(
                f"{url}: not sent: this IP is banned by Binance (HTTP 418, {ban.reason}) until "
                f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(ban.until))}, {wait:.0f} s from now; the ban is "
                f"remembered in {self.ban_memory.path}. Re-run after it ends", retry_after_s=wait,
            )

    def _rate_limit_wait(self, url: str, response: requests.Response, attempt: int) -> float:
        """Seconds to wait before retrying a 429; raises RateLimited for 418, for too long a wait, or when
        no retry is left."""
        status = response.status_code
        header = _retry_after_s(response.headers.get("Retry-After"), time.time())
        if status == 418:
            wait = header if header is not None else MIN_BAN_S
            if self.ban_memory is not None:
                self.ban_memory.record(urllib.parse.urlsplit(url).netloc, wait, f"HTTP 418 on {url}")
            raise RateLimited(
                f"{url}: HTTP 418, this IP is banned by Binance for continuing after 429s; do not send any "
                f"request for {wait:.0f} s (bans escalate up to 3 days), then re-run", retry_after_s=wait,
            )
        wait = header if header is not None else min(self._to_next_minute(), self.max_wait_s)
        if wait > self.max_wait_s:
            raise RateLimited(f"{url}: HTTP 429 with Retry-After {wait:.0f} s, longer than max_wait_s="
                              f"{self.max_wait_s:.0f}; re-run after the wait", retry_after_s=wait)
        if attempt >= self.max_retries:
            raise RateLimited(f"{url}: HTTP 429 after {attempt + 1} attempts; re-run after {wait:.0f} s",
                              retry_after_s=wait)
        return wait

    @staticmethod
    def _to_next_minute() -> float:
        """Seconds to the next UTC minute boundary, when Binance's per-minute weight window resets."""
        return 60.0 - (time.time() % 60.0)

    # ---- shared -----------------------------------------------------------------------------------
    def _absent(self, spec: ArchiveFile, where: str) -> ArchiveError:
        self._count_absent(False)
        today = self.today()
        if is_recent(spec, today, self.publication_lag_days):
            return NotYetPublished(
                f"{spec.file_name} not found at {where}: {spec.cadence} {spec.period_label} is expected from "
                f"{available_from(spec)} plus up to {self.publication_lag_days} days of lag (today {today}); "
                "retryable: try again later"
            )
        return MissingArchiveFile(
            f"{spec.file_name} not found at {where}: Binance's archive has gaps; record this {spec.kind} "
            f"{spec.period_label} as missing (not retryable)"
        )

    def _unverified(self, spec: ArchiveFile, where: str) -> None:
        if self.require_checksum:
            raise ChecksumMissing(f"{where}: no {spec.file_name}.CHECKSUM sidecar and LIQ_REQUIRE_CHECKSUM=1, so the file "
                                  "cannot be verified and is not used; add the sidecar or unset LIQ_REQUIRE_CHECKSUM")

    def _corrupt_advice(self, fetched: FetchedFile) -> str:
        if fetched.source == SOURCE_MIRROR:
            return "replace this mirror file"
        return "fetch again with refresh=True (or delete the cached zip)"

    @staticmethod
    def _csv_member(zf: zipfile.ZipFile, fetched: FetchedFile) -> zipfile.ZipInfo:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        exact = [i for i in infos if Path(i.filename).name == fetched.spec.csv_name]
        csvs = exact or [i for i in infos if i.filename.lower().endswith(".csv")]
        if len(csvs) != 1:
            names = ", ".join(i.filename for i in infos) or "nothing"
            raise CorruptArchive(
                f"{fetched.spec.file_name} ({fetched.zip_path}): expected one CSV member "
                f"({fetched.spec.csv_name}), found {names}"
            )
        return csvs[0]
