"""Land one archive file in one raw-table partition: fetch, verify, extract, parse, replace atomically.

Shared by every raw asset so that missing days, monthly fallbacks, checksums and the ingest log are
handled in one place.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from liq_pipeline.market.archive import ArchiveClient, MissingArchiveFile
from liq_pipeline.market.formats import ArchiveFile
from liq_pipeline.market.parsers import CheckedSelect, MalformedArchiveFile, describe_duckdb_error
from liq_pipeline.warehouse.io import replace_ingest_log, replace_partition

#: (csv path, only_day) -> SELECT producing the raw table's columns for the partition (or a CheckedSelect).
SelectBuilder = Callable[[Path, bool], "str | CheckedSelect"]


@dataclass(frozen=True)
class IngestResult:
    symbol: str
    day: dt.date
    table: str
    rows: int
    status: str  # "ok", "monthly_fallback" or "missing"
    file_name: str | None
    sha256: str | None
    verified: bool

    def metadata(self) -> dict:
        return {
            "status": self.status, "rows": self.rows, "file": self.file_name or "", "sha256": self.sha256 or "",
            "checksum_verified": self.verified,
        }


def _log(con: duckdb.DuckDBPyConnection, result: IngestResult) -> None:
    """One row per (symbol, day, table): which file fed the partition, its checksum and outcome."""
    replace_ingest_log(con, result.symbol, result.day, result.table, result.file_name, result.sha256,
                       result.status, result.rows)


def ingest_partition(
    con: duckdb.DuckDBPyConnection,
    client: ArchiveClient,
    table: str,
    symbol: str,
    day: dt.date,
    spec: ArchiveFile,
    build_select: SelectBuilder,
    monthly_fallback: ArchiveFile | None = None,
) -> IngestResult:
    """Replace (symbol, day) of `table` with the rows of `spec` (or of `monthly_fallback` when the daily
    file is missing). A file missing from the archive leaves an empty partition and a 'missing' entry in
    raw.ingest_log, so a multi-day backfill is not failed by Binance's known gaps. Errors (checksum,
    corrupt zip, malformed row, not yet published) propagate before anything is replaced, so the rows
    already stored survive."""
    status, only_day = "ok", spec.cadence == "monthly"
    try:
        fetched = client.fetch(spec)
    except MissingArchiveFile:
        if monthly_fallback is None:
            fetched = None
        else:
            try:
                fetched = client.fetch(monthly_fallback)
                status, only_day = "monthly_fallback", True
            except MissingArchiveFile:
                fetched = None
    if fetched is None:
        rows = replace_partition(con, table, symbol, day, f"SELECT * FROM {table} WHERE false")
        result = IngestResult(symbol, day, table, rows, "missing", spec.file_name, None, False)
        _log(con, result)
        return result
    with tempfile.TemporaryDirectory(prefix="liq-ingest-") as tmp:
        csv_path = client.extract_csv(fetched, Path(tmp))
        try:
            select = build_select(csv_path, only_day)
            if isinstance(select, CheckedSelect):
                rows = replace_partition(con, table, symbol, day, select.fast, unique=(select.key, select.full))
            else:
                rows = replace_partition(con, table, symbol, day, select)
        except (duckdb.ConversionException, duckdb.InvalidInputException) as e:
            raise describe_duckdb_error(e, csv_path) from e
        except duckdb.ConstraintException as e:
            raise MalformedArchiveFile(f"{fetched.spec.file_name}: a required cell is empty ({e})") from e
    result = IngestResult(symbol, day, table, rows, status, fetched.spec.file_name, fetched.sha256, fetched.verified)
    _log(con, result)
    return result
