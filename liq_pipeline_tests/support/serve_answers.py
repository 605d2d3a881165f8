"""Shared by the tests of `liq serve` over answer files: the instant the page is asked at, a source reading the
warehouse only (as for a warehouse materialized before the answer files), and a writer holding the warehouse's
lock in another process."""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import sys

from liq_pipeline.warehouse.answer_view import AnswerSource
from liq_pipeline_tests.support.shared_market import LAST

LATEST = dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time())
NOW = LATEST + dt.timedelta(days=3)


def from_warehouse(db) -> AnswerSource:
    src = AnswerSource(str(db))
    src.folder = None  # as for a warehouse materialized before the answer files
    return src


@contextlib.contextmanager
def writer_holds(db):
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('locked', flush=True); time.sleep(60)", str(db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()
