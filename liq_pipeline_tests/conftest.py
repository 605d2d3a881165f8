"""Test-session settings, applied before any test module imports liq_pipeline.

The partitions of the simulated source end on the last simulated day found in `data/archive-sim`
(partitions.py); the tests use their own days, some after a demo's range, so they run with the
open-ended range whatever a previous `make demo` left in the checkout.
"""

import os

import pytest

os.environ.setdefault("LIQ_END_DATE", "yesterday")

# Hypothesis's pytest plugin imports hypothesis in its end-of-session summary when no test did; under CPython
# 3.11.7 that late import (through pytest's assertion rewriting) failed after test_no_data_lost.py run alone
# with "SystemError: AST constructor recursion depth mismatch" and exit code 1 although every test passed.
import hypothesis  # noqa: E402, F401


@pytest.fixture(scope="session")
def shared_market(tmp_path_factory):
    """The run's one simulated market (support/shared_market.py), read-only: copy it to write."""
    from liq_pipeline_tests.support import shared_market as sm

    base = tmp_path_factory.getbasetemp()
    # Under pytest-xdist each worker has its own basetemp below the run's one: share the market there.
    folder = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return sm.shared(folder / "shared-market")
