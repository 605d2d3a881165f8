"""The parsed-header cache of the heatmap answer files (warehouse/answer_files.py `_HEADERS`): a file opened
again is not parsed again; a replacement (a rename, as the writer does) is a new file and is read afresh."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from liq_pipeline.warehouse import answer_files as af

DAY = dt.date(2026, 1, 5)


def heatmap_bytes(scale: float = 1.0) -> bytes:
    """One day, one `flow` snapshot: a long level at bin 100 and a short one at bin 200."""
    levels = af.pack_levels([100, 200], [10e6 * scale, 6e6 * scale])
    snap = af.Snapshot(dt.datetime(2026, 1, 5, 0, 15), 1, 1, levels, 100_000.0, "raw.mark_price_klines")
    return af.encode_heatmap("BTCUSDT", DAY, af.pack_prices([100, 200], [95_000.0, 103_000.0]), {"flow": [snap]})


def write(folder) -> af.Path:
    path = af.heatmap_path(folder, "BTCUSDT", DAY)
    af.write_atomically(path, heatmap_bytes())
    return path


def test_reopening_a_file_reuses_its_parsed_header(tmp_path, monkeypatch):
    folder = af.folder_for(tmp_path / "liq.duckdb")
    path = write(folder)
    parsed = []
    real = json.loads
    monkeypatch.setattr(af.json, "loads", lambda body: parsed.append(1) or real(body))
    for _ in range(3):
        with af.HeatmapFile(path) as f:
            assert f.levels("flow", 0)[0][3] == 10e6  # the blocks are still read (and CRC-checked) per open
    assert len(parsed) == 1


def test_a_replaced_file_is_read_afresh_not_from_the_cache(tmp_path):
    folder = af.folder_for(tmp_path / "liq.duckdb")
    path = write(folder)
    with af.HeatmapFile(path) as f:
        assert f.levels("flow", 0)[0][3] == 10e6
    af.write_atomically(path, heatmap_bytes(scale=3.0))  # same size, new inode
    with af.HeatmapFile(path) as f:
        assert f.levels("flow", 0)[0][3] == 30e6


def test_the_cache_keeps_at_most_its_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(af, "HEADER_CACHE", 2)
    monkeypatch.setattr(af, "_HEADERS", {})
    for n in range(4):
        path = write(af.folder_for(tmp_path / f"w{n}" / "liq.duckdb"))
        af.HeatmapFile(path).close()
    assert len(af._HEADERS) == 2
    kept = {Path(key[0]).relative_to(tmp_path).parts[0] for key in af._HEADERS}  # not a substring: xdist's gw0/gw1
    assert kept == {"w2", "w3"}, kept
