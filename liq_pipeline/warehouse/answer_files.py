"""Answer files: the immutable per-partition files `liq heatmap`, `liq zones` and `liq serve` read instead of
opening DuckDB (docs/answer-files.md). The format and its atomic write and checked read, standard library only
(struct, zlib, array, json), so `liq heatmap` imports no numpy, pandas or DuckDB.

A `.heatmap` file is: MAGIC, the header's length and CRC-32 (two little-endian uint32), a JSON header, the
price table (the day's bin ids, int32, and their prices, float64), then one block per (variant, snapshot): its
long levels then its short ones, each by price, as int32 bin ids and float64 notionals (USD); the header
holds each block's offset, length, level counts and CRC-32. Little-endian throughout; times are naive UTC,
ISO text to the second. Optional blocks after the price table: the day's 1m candles per mark table, and, for
the variants the leverage filter of `liq serve` offers, the flow book at the end of the day by (price bin,
leverage bucket, side) (`pack_leverage`; files written before it have none and the warehouse answers).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import struct
import sys
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections import namedtuple
from operator import itemgetter, le
from pathlib import Path

MAGIC = b"LIQHMAP1"
ZONES_FORMAT = "liq-zones/1"
_HEAD = struct.Struct("<II")  # header length, header CRC-32
HEATMAP_SUFFIX = ".heatmap"
ZONES_SUFFIX = ".zones.json"
#: A (side, bin_id, price, notional_usd) level, as `liq heatmap` prints it.
Level = tuple[str, int, float, float]


class AnswerFileError(Exception):
    """An answer file that cannot be read: not one, truncated, corrupt, or without what was asked. The
    message names the file and the cause."""


def folder_for(warehouse: str | Path | None, storage: str = "duckdb", parquet_root: str = "") -> Path | None:
    """The answers folder of a warehouse: beside the DuckDB file (liq.duckdb -> liq.answers/), or
    <parquet root>/answers for a local Parquet root; None for an object-store root (no answer files)."""
    if storage == "parquet":
        return None if "://" in parquet_root else Path(parquet_root) / "answers"
    path = Path(warehouse)
    return path.with_name(path.stem + ".answers")


def heatmap_path(folder: Path, symbol: str, day: dt.date) -> Path:
    return folder / symbol / f"{day.isoformat()}{HEATMAP_SUFFIX}"


def zones_path(folder: Path, symbol: str, day: dt.date) -> Path:
    return folder / symbol / f"{day.isoformat()}{ZONES_SUFFIX}"


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------- write
def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and os.replace: a reader sees the
    old file or the new one, never a part (an open file keeps its inode when it is replaced)."""
    import tempfile  # the writers' only (~5 ms of a `liq heatmap` start otherwise)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Snapshot(namedtuple("Snapshot", "time n_long n_short packed mark mark_table")):
    """One snapshot of one variant, to write: its instant, its levels packed by `pack_levels` (the longs
    first, each side by price), and the mark at that instant with its table (None and '' when none).
    (Named tuples here, not dataclasses: `liq heatmap` imports no `dataclasses`, about 10 ms of a cold start.)"""

    __slots__ = ()


def _le(a: array) -> bytes:
    if sys.byteorder == "big":
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def pack_levels(bin_ids, notionals_usd) -> bytes:
    """A snapshot block: int32 bin ids then float64 notionals (USD), little-endian. (The writer packs numpy
    arrays itself with the same layout: `bins.astype("<i4").tobytes() + usd.astype("<f8").tobytes()`.)"""
    return _le(array("i", bin_ids)) + _le(array("d", notionals_usd))


def pack_prices(bin_ids, prices) -> bytes:
    """The price table: the partition's bin ids (int32, ascending) then their prices (float64)."""
    return pack_levels(bin_ids, prices)


def pack_candles(open_ms, open_, high, low, close) -> bytes:
    """A candle block: int64 open times (ms since the epoch, UTC) then float64 open, high, low, close."""
    return _le(array("q", open_ms)) + b"".join(_le(array("d", x)) for x in (open_, high, low, close))


#: Bytes per row of a leverage block: int32 bin id, int32 leverage bucket, int32 side (+1 long, −1 short),
#: float64 notional (USD), stored column after column.
LEVERAGE_ROW = 20


def pack_leverage(bin_ids, lev_buckets, sides, notionals_usd) -> bytes:
    """A leverage block: the flow book at the end of the day summed by (bin id, leverage bucket, side),
    columns int32, int32, int32, float64, little-endian (heatmap_view.flow_book_leverage's rows of one day)."""
    return b"".join(_le(array("i", x)) for x in (bin_ids, lev_buckets, sides)) + _le(array("d", notionals_usd))


def encode_heatmap(symbol: str, day: dt.date, price_table: bytes, variants: dict[str, list[Snapshot]],
                   candles: dict[str, bytes] | None = None, leverage: dict[str, bytes] | None = None) -> bytes:
    """The .heatmap file of one (symbol, day) partition: the price table (`pack_prices`), every variant's
    snapshots in time order, the day's candles per price table (`pack_candles`, for `liq serve`) and the flow
    book by leverage bucket of the variants the leverage filter offers (`pack_leverage`, for `liq serve`)."""
    if len(price_table) % 12:
        raise ValueError(f"{symbol} {day}: a price table of {len(price_table)} bytes is not n × (4 + 8)")
    blocks = [price_table]
    offset = len(price_table)
    extra_index: dict[str, dict] = {"candles": {}, "leverage": {}}
    for key, parts, row in (("candles", candles, 40), ("leverage", leverage, LEVERAGE_ROW)):
        for name, block in sorted((parts or {}).items()):
            if len(block) % row:
                raise ValueError(f"{symbol} {day} {name}: a {key} block of {len(block)} bytes is not n × {row}")
            extra_index[key][name] = {"offset": offset, "rows": len(block) // row, "crc": zlib.crc32(block)}
            blocks.append(block)
            offset += len(block)
    index = {}
    for variant, snaps in sorted(variants.items()):
        entry = {"time": [], "mark": [], "mark_table": [], "offset": [], "length": [], "levels": [], "crc": []}
        for s in sorted(snaps, key=lambda s: s.time):
            if len(s.packed) != 12 * (s.n_long + s.n_short):
                raise ValueError(f"{symbol} {day} {variant} {s.time}: {len(s.packed)} bytes for "
                                 f"{s.n_long + s.n_short} levels")
            bins = _unpack("i", s.packed[: 4 * (s.n_long + s.n_short)])
            for side, part in (("long", bins[: s.n_long]), ("short", bins[s.n_long:])):
                if not all(map(le, part, part[1:])):  # readers take a window of bins by bisection
                    raise ValueError(f"{symbol} {day} {variant} {s.time}: the {side} levels are not in ascending "
                                     "bin (price) order")
            entry["time"].append(_iso(s.time))
            entry["mark"].append(s.mark)
            entry["mark_table"].append(s.mark_table)
            entry["offset"].append(offset)
            entry["length"].append(len(s.packed))
            entry["levels"].append([s.n_long, s.n_short])
            entry["crc"].append(zlib.crc32(s.packed))
            blocks.append(s.packed)
            offset += len(s.packed)
        index[variant] = entry
    header = {"format": 1, "symbol": symbol, "day": day.isoformat(), "size": 0,
              "prices": {"bins": len(price_table) // 12, "crc": zlib.crc32(price_table)}, **extra_index,
              "variants": index}
    # The size is part of the header, so its digits change the header's length: settle it (two passes at most).
    while True:
        body = json.dumps(header, separators=(",", ":")).encode()
        size = len(MAGIC) + _HEAD.size + len(body) + offset
        if header["size"] == size:
            break
        header["size"] = size
    return MAGIC + _HEAD.pack(len(body), zlib.crc32(body)) + body + b"".join(blocks)


def encode_zones(symbol: str, day: dt.date, variants: dict[str, list[tuple]]) -> bytes:
    """The .zones.json file of one partition: per variant its zone rows (side, zone_rank, centroid_price,
    price_low, price_high, notional_usd, distance_pct, share_of_side, as_of), by side and rank."""
    rows = {v: [[*r[:-1], _iso(r[-1])] for r in sorted(rs, key=lambda r: (r[0], r[1]))]
            for v, rs in sorted(variants.items())}
    return json.dumps({"format": ZONES_FORMAT, "symbol": symbol, "day": day.isoformat(), "variants": rows},
                      separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------------- read
def days_with(folder: Path | None, symbol: str, suffix: str) -> list[dt.date]:
    """The days that have an answer file of `suffix` for `symbol`, ascending ([] when none)."""
    try:
        names = os.listdir(folder / symbol) if folder is not None else []
    except (FileNotFoundError, NotADirectoryError):
        return []
    days = []
    for name in names:
        if name.endswith(suffix) and not name.startswith("."):
            try:
                days.append(dt.date.fromisoformat(name[: -len(suffix)]))
            except ValueError:
                continue
    return sorted(days)


#: Parsed headers of the files a long-lived reader (`liq serve`) opened, by file identity (path, device, inode,
#: size, modification time, header length and CRC): a file is replaced by a rename, so a new version is a new
#: key. A 1-week view opens 9 files per request, and parsing their JSON headers was a third of its CPU.
#: Blocks are still read and CRC-checked per request. At most HEADER_CACHE entries (oldest dropped first).
_HEADERS: dict[tuple, dict] = {}
HEADER_CACHE = 64


class HeatmapFile:
    """One .heatmap file opened for reading: the header checked on open, a block read and checked on demand.
    Use as a context manager; every read comes from the same open file, so a replacement written meanwhile
    is never mixed in."""

    def __init__(self, path: Path):
        self.path = path
        self._f = open(path, "rb")  # noqa: SIM115  (closed by close()/__exit__)
        try:
            self._read_header()
        except BaseException:
            self._f.close()
            raise

    def _fail(self, cause: str) -> AnswerFileError:
        return AnswerFileError(f"answer file {self.path}: {cause}")

    def _read_header(self) -> None:
        st = os.fstat(self._f.fileno())
        size = st.st_size
        head = self._f.read(len(MAGIC) + _HEAD.size)
        if not head.startswith(MAGIC[: min(len(head), len(MAGIC))]) or not head:
            raise self._fail("not a liq heatmap answer file (wrong magic or format version)")
        if len(head) < len(MAGIC) + _HEAD.size:
            raise self._fail(f"truncated ({size} bytes): rewrite it by materializing the partition again")
        length, crc = _HEAD.unpack(head[len(MAGIC):])
        key = (str(self.path), st.st_dev, st.st_ino, size, st.st_mtime_ns, length, crc)
        header = _HEADERS.get(key)
        if header is None:
            header = self._parse_header(size, length, crc)
            while _HEADERS and len(_HEADERS) >= HEADER_CACHE:
                del _HEADERS[next(iter(_HEADERS))]
            if HEADER_CACHE > 0:
                _HEADERS[key] = header
        self.header = header
        self.symbol: str = header["symbol"]
        self.day = dt.date.fromisoformat(header["day"])
        self.variants: dict = header["variants"]
        self._data_start = len(MAGIC) + _HEAD.size + length
        self._prices: dict[int, float] | None = None

    def _parse_header(self, size: int, length: int, crc: int) -> dict:
        body = self._f.read(length)
        if len(body) < length:
            raise self._fail(f"truncated in its header ({size} bytes): rewrite it by materializing the partition again")
        if zlib.crc32(body) != crc:
            raise self._fail("corrupt header (CRC-32 mismatch): rewrite it by materializing the partition again")
        header = json.loads(body)
        if header.get("format") != 1:
            raise self._fail(f"format {header.get('format')!r} is not 1: written by another version of liq")
        if header["size"] != size:
            raise self._fail(f"{'truncated' if size < header['size'] else 'longer than written'}: {size} bytes "
                             f"of {header['size']}: rewrite it by materializing the partition again")
        return header

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> HeatmapFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def variant(self, variant: str) -> dict:
        entry = self.variants.get(variant)
        if entry is None:
            raise AnswerFileError(f"{self.symbol} {self.day}: no {variant!r} heatmap in {self.path} (variants: "
                                  f"{', '.join(self.variants) or 'none'})")
        return entry

    def times(self, variant: str) -> list[str]:
        """The variant's snapshot instants (ISO text, ascending)."""
        return self.variant(variant)["time"]

    def index_at(self, variant: str, at: dt.datetime | None) -> int | None:
        """Index of the variant's last snapshot at or before `at` (the last of all when None); None when the
        day's first snapshot is later than `at`."""
        times = self.times(variant)
        if not times:
            return None
        i = len(times) - 1 if at is None else bisect_right(times, _iso(at)) - 1
        return i if i >= 0 else None

    def snapshot_time(self, variant: str, i: int) -> dt.datetime:
        return dt.datetime.fromisoformat(self.times(variant)[i])

    def mark(self, variant: str, i: int) -> tuple[float | None, str]:
        entry = self.variant(variant)
        return entry["mark"][i], entry["mark_table"][i]

    def _read(self, offset: int, length: int, crc: int, what: str) -> bytes:
        self._f.seek(self._data_start + offset)
        data = self._f.read(length)
        if len(data) != length or zlib.crc32(data) != crc:
            raise self._fail(f"corrupt {what} (CRC-32 mismatch): rewrite it by materializing the partition again")
        return data

    def prices(self) -> dict[int, float]:
        """Price (USD) of each bin id of the partition."""
        if self._prices is None:
            n = self.header["prices"]["bins"]
            data = self._read(0, 12 * n, self.header["prices"]["crc"], "price table")
            bins, price = _unpack("i", data[: 4 * n]), _unpack("d", data[4 * n:])
            self._prices = dict(zip(bins, price, strict=True))
        return self._prices

    def candles(self, table: str) -> tuple[array, ...] | None:
        """(open_ms, open, high, low, close) of the day's candles of `table`; None when the file has none."""
        entry = self.header.get("candles", {}).get(table)
        if entry is None:
            return None
        n = entry["rows"]
        data = self._read(entry["offset"], 40 * n, entry["crc"], f"{table} candles")
        return (_unpack("q", data[: 8 * n]), *(_unpack("d", data[8 * n * k: 8 * n * (k + 1)]) for k in range(1, 5)))

    def leverage(self, variant: str) -> tuple[int, bytes] | None:
        """(rows, the leverage block's bytes: `pack_leverage`'s layout) of `variant`; None when the file has
        none for it (written before the blocks, or a variant the leverage filter does not offer)."""
        entry = self.header.get("leverage", {}).get(variant)
        if entry is None:
            return None
        n = entry["rows"]
        return n, self._read(entry["offset"], LEVERAGE_ROW * n, entry["crc"], f"{variant} leverage block")

    def block(self, variant: str, i: int) -> tuple[int, int, array, array]:
        """(long count, short count, bin ids, notionals USD) of snapshot i: the longs first, each side by price."""
        entry = self.variant(variant)
        n_long, n_short = entry["levels"][i]
        n = n_long + n_short
        data = self._read(entry["offset"][i], entry["length"][i], entry["crc"][i], f"block {variant} {entry['time'][i]}")
        if len(data) != 12 * n:
            raise self._fail(f"corrupt block {variant} {entry['time'][i]}: {len(data)} bytes for {n} levels")
        return n_long, n_short, _unpack("i", data[: 4 * n]), _unpack("d", data[4 * n:])

    def block_in(self, variant: str, i: int, bin_low: int, bin_high: int) -> tuple[int, int, bytes, bytes]:
        """(long count, short count, bin ids, notionals USD) of snapshot i's levels with a bin id in [bin_low,
        bin_high], the ids int32 and the notionals float64 as little-endian bytes, in `block`'s order: each side's
        bins ascend (encode_heatmap checks it), so each side's window is found by bisection, and `liq serve` joins
        only the levels it shows (a sixth of a week's 1.6 M levels within ±15 % of the candles)."""
        entry = self.variant(variant)
        n_long, n_short = entry["levels"][i]
        n = n_long + n_short
        data = self._read(entry["offset"][i], entry["length"][i], entry["crc"][i], f"block {variant} {entry['time'][i]}")
        if len(data) != 12 * n:
            raise self._fail(f"corrupt block {variant} {entry['time'][i]}: {len(data)} bytes for {n} levels")
        view = memoryview(data)
        bins = view[: 4 * n].cast("i") if sys.byteorder == "little" else _unpack("i", data[: 4 * n])
        l0, l1 = bisect_left(bins, bin_low, 0, n_long), bisect_right(bins, bin_high, 0, n_long)
        s0, s1 = bisect_left(bins, bin_low, n_long, n), bisect_right(bins, bin_high, n_long, n)
        if l1 - l0 == n_long and s1 - s0 == n_short:
            return n_long, n_short, data[: 4 * n], data[4 * n:]
        usd = 4 * n
        return (l1 - l0, s1 - s0, bytes(view[4 * l0: 4 * l1]) + bytes(view[4 * s0: 4 * s1]),
                bytes(view[usd + 8 * l0: usd + 8 * l1]) + bytes(view[usd + 8 * s0: usd + 8 * s1]))

    def levels(self, variant: str, i: int) -> list[Level]:
        """Snapshot i's levels (side, bin_id, price, notional_usd), ordered by price."""
        n_long, n_short, bins, usd = self.block(variant, i)
        prices = self.prices()
        try:
            price = [prices[b] for b in bins]
        except KeyError as e:
            raise self._fail(f"corrupt block {variant}: bin {e.args[0]} is not in the price table") from None
        sides = ["long"] * n_long + ["short"] * n_short
        rows = list(zip(sides, bins, price, usd, strict=True))
        rows.sort(key=itemgetter(2))  # both sides by price, as the warehouse answers
        return rows


def _unpack(code: str, data: bytes) -> array:
    a = array(code)
    a.frombytes(data)
    if sys.byteorder == "big":
        a.byteswap()
    return a


def read_zones(path: Path) -> dict:
    """A .zones.json file: {"symbol", "day", "variants": {variant: rows}} with `as_of` as datetime."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AnswerFileError(f"answer file {path}: corrupt or truncated ({len(data)} bytes, {e}): rewrite it by "
                              "materializing the zones again") from None
    if not isinstance(doc, dict) or doc.get("format") != ZONES_FORMAT:
        raise AnswerFileError(f"answer file {path}: not a liq zones answer file (format "
                              f"{doc.get('format') if isinstance(doc, dict) else None!r}, expected {ZONES_FORMAT})")
    doc["variants"] = {v: [(*r[:-1], dt.datetime.fromisoformat(r[-1])) for r in rows]
                       for v, rows in doc["variants"].items()}
    return doc


# ---------------------------------------------------------------------------------------------- answers
class HeatmapAnswer(namedtuple("HeatmapAnswer", "snapshot day levels mark mark_table path")):
    """What `liq heatmap` prints: the snapshot shown (datetime), its day partition (date), its levels (a list of
    Level), the mark (None when none) with its table, and the file read."""

    __slots__ = ()


def _day_of(at: dt.datetime) -> dt.date:
    """The day partition whose snapshots hold `at` (midnight is the last snapshot of the day before)."""
    return (at - dt.timedelta(milliseconds=1)).date() if at.time() == dt.time() else at.date()


def heatmap_answer(folder: Path | None, symbol: str, variant: str, at: dt.datetime | None) -> HeatmapAnswer | None:
    """The levels of the snapshot at or before `at` (default: the latest of the newest file) from the answer
    files; None when no file holds that day (then the warehouse answers: data written before the files)."""
    if folder is None:
        return None
    if at is None:
        days = days_with(folder, symbol, HEATMAP_SUFFIX)
        if not days:
            return None
        candidates = [days[-1]]
    else:
        day = _day_of(at)
        # A time before the day's first snapshot is answered by the last snapshot of the day before.
        candidates = [day, day - dt.timedelta(days=1)]
    if not heatmap_path(folder, symbol, candidates[0]).exists():
        return None
    for day in candidates:
        path = heatmap_path(folder, symbol, day)
        try:
            f = HeatmapFile(path)
        except FileNotFoundError:
            return None
        with f:
            i = f.index_at(variant, at)
            if i is not None:
                mark, table = f.mark(variant, i)
                return HeatmapAnswer(f.snapshot_time(variant, i), f.day, f.levels(variant, i), mark, table, path)
    return None


def zones_answer(folder: Path | None, symbol: str, variant: str, day: dt.date | None) -> tuple[dt.date, list[tuple]] | None:
    """(day, zone rows of `variant` by side and rank) from the zones answer file of `day` (default: the newest
    file holding the variant); None when no file holds it (then the warehouse answers)."""
    if folder is None:
        return None
    days = [day] if day is not None else days_with(folder, symbol, ZONES_SUFFIX)[::-1]
    for d in days:
        try:
            doc = read_zones(zones_path(folder, symbol, d))
        except FileNotFoundError:
            return None
        if variant in doc["variants"]:
            return d, doc["variants"][variant]
        if day is not None:
            return d, []
    return None
