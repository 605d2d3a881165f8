"""Land one archive file in one raw-table partition: fetch, verify, extract, parse, check, then replace.

Shared by every raw asset so that missing days, monthly fallbacks, checksums and the ingest log are
handled in one place. Work happens in two phases so the warehouse is locked only while it is written:
`prepare_partition` downloads, parses (in a private in-memory DuckDB, into an in-memory Arrow table) and runs the
blocking checks without touching the warehouse; `store_partition` then replaces the partition in one
short transaction. A file that is absent never deletes stored rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from liq_pipeline.market.archive import (
    AbsentFileKeptRows,
    ArchiveClient,
    FetchedFile,
    MissingArchiveFile,
    SourceNotAnswering,
    is_recent,
)
from liq_pipeline.market.formats import ArchiveFile
from liq_pipeline.market.parsers import (
    CheckedSelect,
    MalformedArchiveFile,
    describe_duckdb_error,
    first_empty_cell,
)
from liq_pipeline.warehouse.io import (
    count_partition,
    empty_partition,
    replace_ingest_log,
    replace_partition,
    strictly_increasing,
)

#: The name under which the parsed rows are visible to the checks and to the write.
PARSED = "_liq_parsed_rows"

#: (csv path, only_day) -> SELECT producing the raw table's columns for the partition (or a CheckedSelect).
SelectBuilder = Callable[[Path, bool], "str | CheckedSelect"]


@dataclass
class Findings:
    """What a checker found in the parsed rows: `problems` stop the write, `warnings` are shown with the
    materialization, `counts` feed the data-quality checks (e.g. conflicting duplicate ids)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


#: (in-memory connection, SQL name of the parsed rows, csv path) -> findings.
Checker = Callable[[duckdb.DuckDBPyConnection, str, Path], Findings]


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
    #: Notes a person should see (no CHECKSUM sidecar, conflicting duplicates, why a day is missing).
    warnings: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)

    def metadata(self) -> dict:
        return {
            "status": self.status, "rows": self.rows, "file": self.file_name or "", "sha256": self.sha256 or "",
            "checksum_verified": self.verified,
        }


@dataclass
class PreparedPartition:
    """A partition parsed and checked, not yet stored: `parsed` holds its rows (None when absent)."""

    symbol: str
    day: dt.date
    table: str
    spec: ArchiveFile
    status: str
    fetched: FetchedFile | None = None
    parsed: pa.Table | None = None
    #: `parsed` lacks the partition's constant columns symbol and day (CheckedSelect.partition_constant).
    without_partition_columns: bool = False
    rows: int = 0
    #: For an absent file: the error that said so, and what the source answered for other files.
    absent: MissingArchiveFile | None = None
    fallback: ArchiveFile | None = None
    witness: str | None = None
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def neighbours(spec: ArchiveFile) -> list[ArchiveFile]:
    """The previous and next period of `spec` (day or month), same kind and symbol."""
    if spec.cadence == "daily":
        periods = [spec.period - dt.timedelta(days=1), spec.period + dt.timedelta(days=1)]
    else:
        prev = (spec.period - dt.timedelta(days=1)).replace(day=1)
        periods = [prev, (spec.period + dt.timedelta(days=32)).replace(day=1)]
    return [ArchiveFile(spec.kind, spec.symbol, p, spec.cadence, spec.interval) for p in periods]


def _witness(client: ArchiveClient, spec: ArchiveFile, others: Sequence[ArchiveFile]) -> str | None:
    """The name of a file the source has next to the absent `spec` (a neighbouring period of the same kind,
    else the same day of another kind), or None when it has none: then the absence says nothing about
    Binance's archive and everything about the URL, the mirror folder or the symbol."""
    today = client.today()
    for candidate in [*neighbours(spec), *others]:
        if is_recent(candidate, today, client.publication_lag_days):
            continue  # not expected to exist yet: proves nothing either way
        if client.exists(candidate):
            return candidate.file_name
    return None


def parse_and_check(csv_path: Path, kind: str, select: str | CheckedSelect, check: Checker | None,
                    mem: duckdb.DuckDBPyConnection | None = None) -> tuple[pa.Table, Findings]:
    """Run `select` over the CSV in a private in-memory DuckDB (`mem`, a connection of its own that the caller
    closes, else a new one) and return its rows as an
    Arrow table (kept in memory until the write: no second file, and the warehouse is not touched). A
    CheckedSelect runs its cheap select first and falls back to the full one (deduplicating, sorting) only when
    its key does not strictly increase. Returns (rows, findings of `check`, led by an empty required cell with
    its line). Raises MalformedArchiveFile naming the file and line."""
    own = mem is None
    mem = duckdb.connect() if own else mem
    checked = isinstance(select, CheckedSelect)
    # The partition's constant columns are left out of the rows held in memory (1.6 M copies of the symbol
    # and the day: about a tenth of an aggTrades ingest's CPU); `store_partition` adds them back.
    held = (lambda sql: f"SELECT * EXCLUDE (symbol, day) FROM ({sql})") if checked and select.partition_constant \
        else (lambda sql: sql)
    try:
        try:
            rows = mem.sql(held(select.fast if checked else select)).to_arrow_table()
            mem.register(PARSED, rows)
            if checked and not strictly_increasing(mem, PARSED, select.key):
                mem.unregister(PARSED)
                rows = mem.sql(held(select.full)).to_arrow_table()
                mem.register(PARSED, rows)
        except duckdb.OutOfMemoryException:
            raise
        except duckdb.Error as e:  # any other reading error is the file's: conversion, range, CSV structure
            raise describe_duckdb_error(e, csv_path) from e
        findings = check(mem, PARSED, csv_path) if check is not None else Findings()
        if any(column.null_count for column in rows.columns):
            empty = first_empty_cell(mem, csv_path, kind)
            if empty is not None:
                findings.problems.insert(0, f"line {empty[0]}: {empty[1]} is empty (a cell every row needs)")
    finally:
        if own:
            mem.close()
    return rows, findings


def prepare_partition(
    client: ArchiveClient,
    table: str,
    symbol: str,
    day: dt.date,
    spec: ArchiveFile,
    build_select: SelectBuilder,
    work_dir: Path,
    monthly_fallback: ArchiveFile | None = None,
    witnesses: Sequence[ArchiveFile] = (),
    check: Checker | None = None,
) -> PreparedPartition:
    """Fetch `spec` (or `monthly_fallback` when the daily file is missing), extract it into `work_dir`, parse
    it in memory and run `check`; never touches the warehouse. Errors (checksum, corrupt zip, malformed row,
    not yet published, a blocking check) are raised here, before anything is written."""
    status, only_day = "ok", spec.cadence == "monthly"
    fetched: FetchedFile | None = None
    absent: MissingArchiveFile | None = None
    try:
        fetched = client.fetch(spec)
    except MissingArchiveFile as e:
        absent = e
        if monthly_fallback is not None:
            try:
                fetched = client.fetch(monthly_fallback)
                status, only_day = "monthly_fallback", True
            except MissingArchiveFile:
                pass
    if fetched is None:
        others = [w for w in witnesses if w.kind != spec.kind]
        return PreparedPartition(symbol, day, table, spec, "missing", absent=absent, fallback=monthly_fallback,
                                 witness=_witness(client, spec, others))
    prepared = PreparedPartition(symbol, day, table, spec, status, fetched=fetched)
    if not fetched.verified:
        prepared.warnings.append(f"{fetched.spec.file_name}: no .CHECKSUM sidecar, the file was not verified")
    csv_path = client.extract_csv(fetched, work_dir)
    try:  # the extracted CSV is removed on every path, failures included
        select = build_select(csv_path, only_day)
        parsed, findings = parse_and_check(csv_path, fetched.spec.kind, select, check)
    finally:
        csv_path.unlink(missing_ok=True)
    prepared.without_partition_columns = isinstance(select, CheckedSelect) and select.partition_constant
    prepared.rows = parsed.num_rows
    if findings.problems:
        raise MalformedArchiveFile(f"{fetched.spec.file_name}: " + "; ".join(findings.problems)
                                   + "; nothing stored, the partition keeps its previous rows")
    prepared.warnings.extend(f"{fetched.spec.file_name}: {w}" for w in findings.warnings)
    prepared.counts.update(findings.counts)
    prepared.parsed = parsed
    return prepared


def store_partition(con: duckdb.DuckDBPyConnection, client: ArchiveClient, prepared: PreparedPartition) -> IngestResult:
    """Replace the partition with the prepared rows in one transaction and log which file fed it.

    An absent file never deletes stored rows: with rows stored it raises AbsentFileKeptRows; with nothing
    stored it records 'missing' only when the source answered for a neighbouring period or another kind of
    the same day, else it raises SourceNotAnswering (a wrong URL, mirror folder or symbol)."""
    p = prepared
    if p.parsed is None:
        stored = count_partition(con, p.table, p.symbol, p.day)
        if stored:
            raise AbsentFileKeptRows(
                f"{p.table} {p.symbol} {p.day}: {p.spec.file_name} is not at {client.location(p.spec)}"
                f"{f' (nor {p.fallback.file_name})' if p.fallback is not None else ''}. "
                f"The partition keeps its {stored:,} stored rows (nothing "
                f"deleted): the file was there when they were ingested, so it was probably removed or renamed in "
                f"the source, or the {client.source_label} changed (LIQ_MIRROR_DIR / LIQ_ARCHIVE_URL). Restore the "
                "file or point the source back at it; to drop the rows on purpose, delete them from the warehouse"
            )
        if p.witness is None:
            raise SourceNotAnswering(
                f"{p.table} {p.symbol} {p.day}: {p.spec.file_name} is absent and so are its neighbouring "
                f"{'days' if p.spec.cadence == 'daily' else 'months'} and the other kinds of that day: "
                f"{client.absent_in_a_row} files asked for in a row were not found at the {client.source_label}. "
                "The URL or folder (LIQ_ARCHIVE_URL / LIQ_MIRROR_DIR) or the symbol (LIQ_SYMBOLS) is probably "
                "wrong, or the symbol was not trading then; nothing was recorded"
            )
        rows = empty_partition(con, p.table, p.symbol, p.day)
        note = (f"{p.spec.file_name} never published (the source has {p.witness}); recorded as missing, "
                "partition left empty")
        result = IngestResult(p.symbol, p.day, p.table, rows, "missing", p.spec.file_name, None, False,
                              (*p.warnings, note))
    else:
        con.register(PARSED, p.parsed)
        select, params = ((f"SELECT ?::VARCHAR AS symbol, ?::DATE AS day, * FROM {PARSED}", [p.symbol, p.day])
                          if p.without_partition_columns else (f"SELECT * FROM {PARSED}", None))
        try:
            rows = replace_partition(con, p.table, p.symbol, p.day, select, params)
        except duckdb.ConstraintException as e:
            raise MalformedArchiveFile(f"{p.fetched.spec.file_name}: a required cell is empty ({e})") from e
        finally:
            con.unregister(PARSED)
        f = p.fetched
        result = IngestResult(p.symbol, p.day, p.table, rows, p.status, f.spec.file_name, f.sha256, f.verified,
                              tuple(p.warnings), dict(p.counts))
        p.parsed = None  # the rows are stored: free them
    replace_ingest_log(con, result.symbol, result.day, result.table, result.file_name, result.sha256,
                       result.status, result.rows)
    return result


def ingest_partition(
    con: duckdb.DuckDBPyConnection,
    client: ArchiveClient,
    table: str,
    symbol: str,
    day: dt.date,
    spec: ArchiveFile,
    build_select: SelectBuilder,
    monthly_fallback: ArchiveFile | None = None,
    witnesses: Sequence[ArchiveFile] = (),
    check: Checker | None = None,
) -> IngestResult:
    """`prepare_partition` then `store_partition` on an open connection (for callers that already hold it)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="liq-ingest-") as tmp:
        prepared = prepare_partition(client, table, symbol, day, spec, build_select, Path(tmp),
                                     monthly_fallback, witnesses, check)
        return store_partition(con, client, prepared)
