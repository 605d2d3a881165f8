"""compute_flow_day with worker processes open (pipeline/workers.py, as `make demo` runs it): every book's
day and the survival fit's candidate books run there, and the frames, books and flags are bit for bit
those computed in this process."""

from __future__ import annotations

import numpy as np
import pandas as pd

from liq_pipeline.pipeline import workers
from liq_pipeline.pipeline.flow_day import compute_flow_day
from liq_pipeline_tests.support.busy_day import DAY, SYMBOL, busy_day_tables, store_tables


def test_flow_day_in_worker_processes_equals_the_day_in_process(tmp_path):
    con = store_tables(tmp_path / "w.duckdb", busy_day_tables(), None)
    try:
        here = compute_flow_day(con, SYMBOL, DAY)
        with workers.running_in(2):
            beside = compute_flow_day(con, SYMBOL, DAY)
    finally:
        con.close()
    assert here["flags"] == beside["flags"] and list(here["books"]) == list(beside["books"])
    for key in ("book", "snapshots", "steps", "candidate_books"):
        assert len(here[key]) > 0, key
        pd.testing.assert_frame_equal(here[key], beside[key], check_exact=True)
    assert here["engine_rows"] == beside["engine_rows"]
    for a, b in zip(here["candidates"], beside["candidates"], strict=True):
        assert (a["half_life_hours"], a["warm"]) == (b["half_life_hours"], b["warm"])
        assert np.array_equal(a["consumed_hourly"], b["consumed_hourly"])
