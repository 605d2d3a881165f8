"""Fixtures of the market tests."""

from __future__ import annotations

import datetime as dt

import pytest

from liq_pipeline_tests.support.mirror_fixture import write_day
from liq_pipeline_tests.support.raw_runs import DAY


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "mirror"
    for day in (DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1)):
        write_day(root, "BTCUSDT", day, n_trades=50)
    return root
