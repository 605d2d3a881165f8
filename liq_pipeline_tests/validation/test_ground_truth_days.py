"""truth.ground_truth_days: the rows of ground_truth_accuracy day after day, the same whether the oracle
maps are computed in this process or in worker processes (pipeline/workers.py, as `make demo` runs it)."""

from __future__ import annotations

import math

import duckdb

from liq_pipeline.pipeline import workers
from liq_pipeline.validation import truth
from liq_pipeline_tests.assets.test_validation_assets import DAYS, SYMBOL, build_warehouse


def _same(a: list[dict], b: list[dict]) -> bool:
    """Equal row by row and key by key, NaN equal to NaN (no tolerance: the same arithmetic)."""
    def eq(x, y):
        return (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) or x == y

    return len(a) == len(b) and all(ra.keys() == rb.keys() and all(eq(ra[k], rb[k]) for k in ra)
                                    for ra, rb in zip(a, b, strict=True))


def test_ground_truth_days_equal_the_daily_rows_in_process_and_in_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("LIQ_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "w.duckdb"
    build_warehouse(path, hybrid_good=True)
    days = DAYS[:4]
    with duckdb.connect(str(path)) as con:
        daily = [row for d in days for row in truth.ground_truth_accuracy(con, SYMBOL, d)]
        here = truth.ground_truth_days(con, SYMBOL, days)
        with workers.running_in(2):
            beside = truth.ground_truth_days(con, SYMBOL, days)
    assert len({r["day"] for r in daily}) >= 2 and {r["day"] for r in daily} <= {d.isoformat() for d in days}
    assert "ceiling" in daily[0] and daily[0]["ceiling"] > 0
    assert _same(daily, here) and _same(daily, beside)
