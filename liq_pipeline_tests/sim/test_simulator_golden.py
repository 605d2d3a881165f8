"""The simulator's output pinned: a digest of what a small seeded market contains, so a speed-up of the
simulator (vectorising, fewer copies) that changes one number, one row or one random draw fails here.

The digest covers the parsed content, not the file bytes: every archive zip's CSV text, every truth file's
rows written as CSV (floats in their exact round-trip form) and the text files. The zips' and parquet
files' own bytes (and so the CHECKSUM sidecars) also depend on the zlib and pyarrow versions installed;
`test_simulator.py` checks those bytes are reproducible run to run.

When the simulated market is changed on purpose, print the new digest with
`LIQ_UPDATE_SIM_DIGEST=1 .venv/bin/python -m pytest -q -s liq_pipeline_tests/sim/test_simulator_golden.py`
and pin it here in the same commit, saying why the market changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from liq_pipeline.sim import SimConfig, simulate

#: sha256 of `content_digest` for `golden_config`, as simulated by the code this digest was pinned with.
GOLDEN = "6a47ca90bf9b32a1d17a973c96b94f9032881d159b548d703809ef96c8535747"


def golden_config(out: Path) -> SimConfig:
    """Two symbols, three days across a month end (two monthly funding files), enough positions for
    liquidations, stops, margin top-ups and provider rebalancing to happen."""
    return SimConfig.for_scenario("calm", symbols=("BTCUSDT", "ETHUSDT"), start=dt.date(2026, 1, 30), days=3,
                                  seed=7, out_dir=out, trades_per_day=8_000, positions_per_day=2_000, workers=1)


def content_digest(root: Path) -> tuple[str, dict[str, int]]:
    """sha256 over every file's content in path order (see the module docstring), and rows per truth file."""
    h = hashlib.sha256()
    rows: dict[str, int] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if path.suffix == ".CHECKSUM" or path.name == "simulation.json":
            continue  # the zip's sha256 (zlib-dependent), and wall times
        h.update(rel.encode() + b"\0")
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                for name in zf.namelist():
                    h.update(name.encode() + b"\0" + zf.read(name))
        elif path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            rows[rel] = len(frame)
            h.update(repr(list(zip(frame.columns, map(str, frame.dtypes), strict=True))).encode())
            h.update(frame.to_csv(index=False).encode())
        else:
            h.update(path.read_bytes())
    return h.hexdigest(), rows


def test_a_small_seeded_market_has_the_pinned_content(tmp_path):
    simulate(golden_config(tmp_path))
    digest, rows = content_digest(tmp_path)
    # The digest must cover every mechanism: each of these truth files has rows for both symbols.
    for kind in ("positions", "liquidations", "margin_changes", "open_positions", "funding", "providers"):
        for symbol in ("BTCUSDT", "ETHUSDT"):
            assert rows[f"truth/{kind}/{symbol}.parquet"] > 0, (kind, symbol, rows)
    if os.environ.get("LIQ_UPDATE_SIM_DIGEST") == "1":
        print(f"\nGOLDEN = {digest!r}")
        return
    assert digest == GOLDEN, (
        "the simulated market changed (a different number, row or random draw); if on purpose, pin the new "
        f"digest (see the module docstring): {digest}")


def test_the_ar1_filter_gives_scipy_lfilters_values_bit_for_bit():
    from scipy.signal import lfilter

    from liq_pipeline.sim.price import _ar1

    rng = np.random.default_rng(3)
    for _ in range(200):
        phi = float(np.exp(-rng.uniform(0.01, 30) / 1440))
        previous = float(rng.standard_normal() * rng.uniform(0, 3))
        eps = rng.standard_normal(1440) * rng.uniform(1e-4, 2)
        expected, _ = lfilter([1.0], [1.0, -phi], eps, zi=[phi * previous])
        assert np.array_equal(_ar1(eps, phi, previous).view(np.int64), expected.view(np.int64))
