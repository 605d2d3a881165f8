"""A change to the Dagster graph is a visible diff: every partitions definition, asset (group, kinds,
partitions, automation, backfill policy), dependency and its partition mapping, asset check, job (its assets
and checks), schedule and sensor, as built in a clean environment (no LIQ_* settings, open-ended days), is
compared with the committed `definitions.snapshot`. After an intended change, regenerate it with

    LIQ_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest -q liq_pipeline_tests/definitions/test_definitions_snapshot.py

and commit the file with the change (docs/development.md)."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

from liq_pipeline_tests.support.paths import REPO

SNAPSHOT = Path(__file__).with_name("definitions.snapshot")
KINDS = ("partitions", "asset", "dep", "check", "job", "schedule", "sensor")


def current_snapshot(tmp_path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIQ_", "DAGSTER_"))}
    env.update(LIQ_END_DATE="yesterday", LIQ_DATA_DIR=str(tmp_path / "data"), DAGSTER_HOME=str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    out = subprocess.run([sys.executable, "-m", "liq_pipeline_tests.support.definitions_snapshot"], env=env,
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_definitions_match_the_committed_snapshot(tmp_path):
    now = current_snapshot(tmp_path)
    assert {line.split(" ", 1)[0] for line in now.splitlines()} == set(KINDS), "the snapshot lost a kind of fact"
    if os.environ.get("LIQ_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(now)
    committed = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    if now != committed:
        diff = "".join(difflib.unified_diff(committed.splitlines(keepends=True), now.splitlines(keepends=True),
                                            "definitions.snapshot (committed)", "definitions (now)", n=1))
        raise AssertionError("the Dagster definitions changed; if intended, regenerate with LIQ_UPDATE_SNAPSHOT=1 "
                             f"(see this file's docstring) and commit definitions.snapshot:\n{diff}")
