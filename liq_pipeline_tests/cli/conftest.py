"""Fixtures of the CLI tests."""

from __future__ import annotations

import pytest

from liq_pipeline_tests.support.cli_warehouse import write_cli_warehouse


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    monkeypatch.setenv("LIQ_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LIQ_SYMBOLS", raising=False)
    return write_cli_warehouse(tmp_path)
