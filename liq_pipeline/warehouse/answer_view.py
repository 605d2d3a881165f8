"""What `liq serve` reads, from the answer files where they exist (docs/answer-files.md): the catalog, the
snapshot instants, the heatmap cells, the candles and the leverage filter's book of a symbol; the warehouse
(heatmap_view.py) for what the files do not hold (realized liquidations, the live layer) and for a
symbol without answer files (a warehouse materialized before them). The warehouse is opened only when a
request needs it, so the page keeps answering while a Dagster run holds DuckDB's write lock.

Same return types as heatmap_view.py's functions: numpy columns, times datetime64[ms], naive UTC.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np

from liq_pipeline.warehouse import answer_files as af
from liq_pipeline.warehouse import heatmap_view as wv
from liq_pipeline.warehouse.resource import WarehouseLocked

_EMPTY_CELLS = {"snapshot_time": np.zeros(0, "datetime64[ms]"), "day": np.zeros(0, "datetime64[D]"),
                "side": np.zeros(0, np.int8), "bin_id": np.zeros(0, np.int64), "notional_usd": np.zeros(0)}


#: (database, symbol) -> (the warehouse's stamp, days with realized liquidations) as last read: a request whose
#: window has none of them does not open the warehouse while the file is unchanged.
_REALIZED_DAYS: dict[tuple[str, str], tuple[tuple, frozenset[dt.date]]] = {}


class AnswerSource:
    """One request's reads: answer files first, the warehouse (opened once, on demand) for the rest."""

    def __init__(self, database: str | None, storage: str = "duckdb", parquet_root: str = ""):
        self.database, self.storage, self.parquet_root = database, storage, parquet_root
        self.folder = af.folder_for(database, storage, parquet_root)
        self._con = None
        self._files: dict[tuple[str, dt.date], af.HeatmapFile | None] = {}

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> AnswerSource:
        if not self.symbols() and self.storage == "duckdb" and not Path(self.database).exists():
            raise FileNotFoundError(f"warehouse {self.database} does not exist: run `make demo` or materialize the "
                                    "heatmap")
        return self

    def __exit__(self, *exc) -> None:
        for f in self._files.values():
            if f is not None:
                f.close()
        if self._con is not None:
            self._con.close()

    def connection(self):
        """The warehouse, read-only, opened on first use (FileNotFoundError when it does not exist)."""
        if self._con is None:
            self._con = wv.open_read_only(self.database, self.storage, self.parquet_root)
        return self._con

    # ------------------------------------------------------------------ files
    def symbols(self) -> list[str]:
        """Symbols with heatmap answer files."""
        try:
            names = sorted(os.listdir(self.folder)) if self.folder is not None else []
        except FileNotFoundError:
            return []
        return [s for s in names if af.days_with(self.folder, s, af.HEATMAP_SUFFIX)]

    def _has_files(self, symbol: str) -> bool:
        return self.folder is not None and (self.folder / symbol).is_dir()

    def _file(self, symbol: str, day: dt.date) -> af.HeatmapFile | None:
        key = (symbol, day)
        if key not in self._files:
            try:
                self._files[key] = af.HeatmapFile(af.heatmap_path(self.folder, symbol, day))
            except FileNotFoundError:
                self._files[key] = None
        return self._files[key]

    def _days(self, first: dt.date, last: dt.date) -> list[dt.date]:
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    # ------------------------------------------------------------------ heatmap_view's reads
    def materialized(self) -> list[wv.Materialized]:
        """Every (symbol, variant) with heatmap snapshots: its first and last day and newest snapshot."""
        symbols = self.symbols()
        if not symbols:
            return wv.materialized(self.connection()) if self._warehouse_exists() else []
        out = []
        for symbol in symbols:
            days = af.days_with(self.folder, symbol, af.HEATMAP_SUFFIX)
            last = self._file(symbol, days[-1])
            for variant in sorted(last.variants):
                if last.times(variant):
                    out.append(wv.Materialized(symbol, variant, days[0], days[-1],
                                               dt.datetime.fromisoformat(last.times(variant)[-1])))
        return out

    def _warehouse_exists(self) -> bool:
        return self.storage == "parquet" or Path(self.database).exists()

    def snapshot_times(self, symbol: str, variant: str, start: dt.datetime, end: dt.datetime) -> np.ndarray:
        """Snapshot instants in (start, end], ascending (datetime64[ms])."""
        if not self._has_files(symbol):
            return wv.snapshot_times(self.connection(), symbol, variant, start, end)
        out = []
        for day in self._days(start.date() - dt.timedelta(days=1), end.date()):
            f = self._file(symbol, day)
            if f is not None and variant in f.variants:
                out += f.times(variant)
        t = np.asarray(out, "datetime64[ms]")
        return t[(t > np.datetime64(start, "ms")) & (t <= np.datetime64(end, "ms"))]

    def heatmap_cells(self, symbol: str, variant: str, times: np.ndarray, bin_low: int, bin_high: int) -> dict:
        """Cells of the given snapshot instants inside [bin_low, bin_high] (heatmap_view.heatmap_cells)."""
        if not self._has_files(symbol):
            return wv.heatmap_cells(self.connection(), symbol, variant, times, bin_low, bin_high)
        if times.size == 0:
            return dict(_EMPTY_CELLS)
        wanted = {str(t) for t in times.astype("datetime64[s]")}
        # Per block only the bytes of its levels inside [bin_low, bin_high] (found by bisection: each side's bins
        # ascend) and their counts; the arrays are built once over all blocks (a week is ~700 blocks).
        low, high = max(bin_low, -(2**31)), min(bin_high, 2**31 - 1)  # the file's bins are int32
        bins, usd, sides, when, days = [], [], [], [], []
        first, last = times[0].astype(dt.datetime), times[-1].astype(dt.datetime)
        for day in self._days(first.date() - dt.timedelta(days=1), last.date()):
            f = self._file(symbol, day)
            if f is None or variant not in f.variants:
                continue
            for i, text in enumerate(f.times(variant)):
                if text not in wanted:
                    continue
                n_long, n_short, b, u = f.block_in(variant, i, low, high)
                bins.append(b)
                usd.append(u)
                sides += (n_long, n_short)
                when.append(text)
                days.append(day)
        if not bins or not any(sides):
            return dict(_EMPTY_CELLS)
        counts = np.add.reduceat(np.asarray(sides, np.int64), np.arange(0, len(sides), 2))
        side = np.repeat(np.tile(np.array([1, -1], np.int8), len(bins)), sides)
        return {"snapshot_time": np.repeat(np.array(when, "datetime64[ms]"), counts),
                "day": np.repeat(np.array(days, "datetime64[D]"), counts),
                "side": side, "bin_id": np.frombuffer(b"".join(bins), "<i4").astype(np.int64),
                "notional_usd": np.frombuffer(b"".join(usd), "<f8").copy()}

    def candles(self, table: str, symbol: str, start: dt.datetime, end: dt.datetime, minutes: int) -> dict:
        """OHLC candles of `minutes` width over [start, end) (heatmap_view.candles), from the files' 1m
        candles of each day: buckets aligned on midnight UTC, first open, highest high, lowest low, last close."""
        if not self._has_files(symbol):
            return wv.candles(self.connection(), table, symbol, start, end, minutes)
        cols = [[] for _ in range(5)]
        for day in self._days(start.date(), end.date()):
            f = self._file(symbol, day)
            c = f.candles(table) if f is not None else None
            if c is not None:
                for k in range(5):
                    cols[k].append(np.frombuffer(c[k], np.int64 if k == 0 else np.float64))
        empty = {k: np.zeros(0) for k in ("open", "high", "low", "close")} | {"open_time": np.zeros(0, "datetime64[ms]")}
        if not cols[0]:
            return empty
        t, o, h, lo, c = (np.concatenate(x) for x in cols)
        keep = (t >= int(np.datetime64(start, "ms").astype(np.int64))) & (t < int(np.datetime64(end, "ms").astype(np.int64)))
        t, o, h, lo, c = t[keep], o[keep], h[keep], lo[keep], c[keep]
        if t.size == 0:
            return empty
        order = np.argsort(t, kind="stable")
        t, o, h, lo, c = t[order], o[order], h[order], lo[order], c[order]
        width = minutes * 60_000
        bucket = t // width * width
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        ends = np.r_[starts[1:], t.size] - 1
        return {"open_time": bucket[starts].astype("datetime64[ms]"), "open": o[starts],
                "high": np.maximum.reduceat(h, starts), "low": np.minimum.reduceat(lo, starts), "close": c[ends]}

    def realized_liquidations(self, symbol: str, start: dt.datetime, end: dt.datetime, limit: int = 5000) -> dict:
        """heatmap_view.realized_liquidations from the warehouse (recorded or imported: not in the files). With
        answer files the warehouse is opened only when the window has days with realized liquidations (their
        days are remembered until the DuckDB file changes), and a warehouse locked by a writer (or missing)
        gives none, saying why in `unavailable`."""
        if not self._has_files(symbol):
            return wv.realized_liquidations(self.connection(), symbol, start, end, limit)
        none = wv.realized_liquidations(None, symbol, start, end, limit, empty=True)
        stamp = self._warehouse_stamp()
        known = _REALIZED_DAYS.get((self.database, symbol))
        if stamp is not None and known is not None and known[0] == stamp and not any(
                d in known[1] for d in self._days(start.date(), end.date())):
            return none
        if self._con is None:
            try:
                self._con = wv.open_read_only(self.database, self.storage, self.parquet_root, lock_timeout_s=0.0)
            except (WarehouseLocked, FileNotFoundError) as e:
                return {**none, "unavailable": "the warehouse is locked by a running materialization"
                        if isinstance(e, WarehouseLocked) else str(e)}
        if stamp is not None:
            _REALIZED_DAYS[(self.database, symbol)] = (stamp, wv.realized_days(self._con, symbol))
        return wv.realized_liquidations(self._con, symbol, start, end, limit)

    def _warehouse_stamp(self) -> tuple | None:
        """(size, mtime) of the DuckDB file and its write-ahead log: changes with every write."""
        if self.storage != "duckdb":
            return None
        try:
            st = os.stat(self.database)
        except FileNotFoundError:
            return None
        try:
            wal = os.stat(f"{self.database}.wal")
            wal_stamp = (wal.st_size, wal.st_mtime_ns)
        except FileNotFoundError:
            wal_stamp = None
        return st.st_size, st.st_mtime_ns, wal_stamp

    def flow_book_leverage(self, symbol: str, variant: str, grid, first_day: dt.date, last_day: dt.date) -> dict:
        """heatmap_view.flow_book_leverage: the leverage filter's book at the end of each day, from the answer
        files' leverage blocks (written with the heatmap, answer_store._leverage); from the warehouse when a day
        of the range has no file or no block for the variant (a file written before the blocks)."""
        if not self._has_files(symbol):
            return wv.flow_book_leverage(self.connection(), symbol, variant, grid, first_day, last_day)
        parts = []
        for day in self._days(first_day, last_day):
            f = self._file(symbol, day)
            block = f.leverage(variant) if f is not None else None
            if block is None:
                return wv.flow_book_leverage(self.connection(), symbol, variant, grid, first_day, last_day)
            n, data = block
            cols = [np.frombuffer(data, "<i4", n, 4 * n * k) for k in range(3)]
            parts.append((np.full(n, np.datetime64(day, "D")), *cols, np.frombuffer(data, "<f8", n, 12 * n)))
        day, bins, lev, side, usd = (np.concatenate(x) for x in zip(*parts, strict=True))
        return {"day": day, "side": side.astype(np.int8), "bin_id": bins.astype(np.int64),
                "lev_bucket": lev.astype(np.int64), "notional_usd": usd.astype(float)}
