"""Test-session settings, applied before any test module imports liq_pipeline.

The partitions of the simulated source end on the last simulated day found in `data/archive-sim`
(partitions.py); the tests use their own days, some after a demo's range, so they run with the
open-ended range whatever a previous `make demo` left in the checkout.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("LIQ_END_DATE", "yesterday")

# Hypothesis's pytest plugin imports hypothesis in its end-of-session summary when no test did; under CPython
# 3.11.7 that late import (through pytest's assertion rewriting) failed after test_no_data_lost.py run alone
# with "SystemError: AST constructor recursion depth mismatch" and exit code 1 although every test passed.
import hypothesis  # noqa: E402, F401

TESTS = Path(__file__).resolve().parent
# The costliest test files, most CPU first (measured per file over every process a test starts, support/cpu_log.py,
# docs/development.md#time), started first under xdist so the short files fill both workers at the end
# (longest-first scheduling). The first three start at once on `make test`'s three workers: the Postgres instance,
# the Parquet comparison (its worker builds the shared market at once: a market user scheduled while another
# worker builds it idles on the lock, about 40 s in the run measured) and the browser test. The Postgres and
# browser tests mostly wait on the Dagster daemon's 30-second ticks, so the third worker keeps both cores busy.
LONGEST_FIRST = ["deploy/test_prod_local.py", "warehouse/test_parquet_storage.py", "e2e/test_ui_backfill.py",
                 "market/test_hostile_inputs.py", "assets/test_validation_assets.py", "cli/test_real_data_slice.py",
                 "cli/test_kline_only_mirror.py", "apps/test_serve.py", "pipeline/test_pipeline_chain.py",
                 "market/test_file_identity.py", "market/test_no_data_lost.py", "sim/test_realism_facts.py",
                 "assets/test_model_assets.py"]
# Files whose tests share no module or session fixture worth building twice: under `make test` each of their
# tests is a unit of work of its own, so one long file (the Hypothesis properties: 104 s of CPU) is shared by
# the workers instead of holding one. Every other file stays on one worker (its module fixtures built once).
SPREAD = {"market/test_hostile_inputs.py", "assets/test_validation_assets.py", "market/test_file_identity.py",
          "market/test_no_data_lost.py", "assets/test_model_assets.py"}


def pytest_collection_modifyitems(config, items):
    """Three rules on the collected tests:
    - the benchmark harness (`-m bench`, make test-bench) runs only when the -m expression names it, so
      `-m "not slow"` and plain runs leave it out alike;
    - a test that uses the shared simulated market is slow (building it takes about 40 s of CPU);
    - the files of LONGEST_FIRST run first, in that order, then the other files with slow tests, then the
      rest, so under xdist (`make test`) the long ones start at once and the short ones fill the workers at
      the end (a file's tests stay together, its fixtures built once, except in the SPREAD files)."""
    if "bench" not in (config.option.markexpr or ""):
        bench = [item for item in items if item.get_closest_marker("bench") is not None]
        if bench:
            config.hook.pytest_deselected(items=bench)
            items[:] = [item for item in items if item.get_closest_marker("bench") is None]
    for item in items:
        if "shared_market" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    order = {id(item): i for i, item in enumerate(items)}

    def rank(item):
        relative = item.path.relative_to(TESTS).as_posix()
        first = LONGEST_FIRST.index(relative) if relative in LONGEST_FIRST else len(LONGEST_FIRST)
        return first, item.path not in slow_files, order[id(item)]

    items.sort(key=rank)


@pytest.fixture(scope="session")
def shared_market(tmp_path_factory):
    """The run's one simulated market (support/shared_market.py), read-only: copy it to write."""
    from liq_pipeline_tests.support import shared_market as sm

    base = tmp_path_factory.getbasetemp()
    # Under pytest-xdist each worker has its own basetemp below the run's one: share the market there.
    folder = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return sm.shared(folder / "shared-market")


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: a run with -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` (make test) with the SPREAD files' tests scheduled one by one."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FileOrTestScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if path.removeprefix(f"{TESTS.name}/") in SPREAD else path

    return FileOrTestScheduling(config, log)
