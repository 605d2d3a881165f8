"""Deterministic, atomic file writers for the simulator: archive zips with CHECKSUM sidecars, CSVs, JSONL.

Same input ⇒ byte-identical files: zip entries carry a fixed date (1980-01-01), fixed permissions and a
fixed deflate level, and numbers are written through Arrow decimals (exact tick precision, no float
artefacts such as 93548.80000000001). Every file is written under a temporary name and renamed into
place, so a crash never leaves a half-written file under its final name.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from liq_pipeline.market.formats import ArchiveFile

#: Fixed timestamp of every zip entry: the zip format's epoch, so checksums do not depend on the clock.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=65_536)


def decimal_column(values: np.ndarray, scale: int, nullable: bool = False) -> pa.Array:
    """Float64 values as an Arrow decimal with `scale` digits, rounded half-to-even at that scale.

    NaN becomes NULL (an empty CSV cell) when `nullable`; otherwise NaN is a bug and raises.
    """
    values = np.asarray(values, dtype=np.float64)
    if not nullable and np.isnan(values).any():
        raise ValueError("NaN in a column that must not be empty")
    array = pa.array(values, from_pandas=True)  # NaN -> null
    return pc.round(array, scale).cast(pa.decimal128(38, scale), safe=False)


def decimals_for(step: float) -> int:
    """Number of decimals of a tick or step size (0.1 -> 1, 0.001 -> 3, 1 -> 0)."""
    text = f"{step:.12f}".rstrip("0").rstrip(".")
    return len(text.split(".")[1]) if "." in text else 0


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = _atomic_target(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def csv_bytes(header: Sequence[str] | None, table: pa.Table) -> bytes:
    """CSV text of `table` (columns in table order) with an unquoted header row like Binance's files."""
    buf = io.BytesIO()
    if header is not None:
        if list(header) != table.column_names:
            raise ValueError(f"CSV header {list(header)} does not match the table columns {table.column_names}")
        buf.write((",".join(header) + "\n").encode("ascii"))
    pacsv.write_csv(table, buf, _CSV_OPTIONS)
    return buf.getvalue()


def write_csv_atomic(path: Path, header: Sequence[str], table: pa.Table) -> None:
    write_bytes_atomic(path, csv_bytes(header, table))


def write_archive_zip(root: Path, spec: ArchiveFile, header: Sequence[str], table: pa.Table,
                      compress_level: int = 6) -> tuple[Path, str]:
    """Write `spec` below `root` (data.binance.vision layout) and its `.CHECKSUM`; return (path, sha256).

    The zip holds one CSV named like the zip (`BTCUSDT-aggTrades-2026-01-05.csv`), streamed into the
    deflate stream so memory stays bounded by Arrow's batch size. The sidecar is GNU sha256sum text,
    `"<hex>  <zip name>"` without a trailing newline, as on data.binance.vision (binance-data.md §1.4).
    """
    if list(header) != table.column_names:
        raise ValueError(f"{spec.file_name}: header {list(header)} does not match columns {table.column_names}")
    path = root / spec.relpath
    tmp = _atomic_target(path)
    info = zipfile.ZipInfo(spec.csv_name, date_time=ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    # ZipFile.open(ZipInfo, "w") takes the level from the ZipInfo; the attribute name differs by Python.
    setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel", compress_level)
    with zipfile.ZipFile(tmp, "w") as zf, zf.open(info, "w") as dst:
        dst.write((",".join(header) + "\n").encode("ascii"))
        pacsv.write_csv(table, dst, _CSV_OPTIONS)
    digest = _sha256(tmp)
    os.replace(tmp, path)
    write_bytes_atomic(root / spec.checksum_relpath, f"{digest}  {spec.file_name}".encode("ascii"))
    return path, digest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
