"""pipeline/workers.py cpu_s: the CPU the open worker processes have used counts while they run (the demo's
per-stage and total CPU), and nothing is counted with no pool open."""

from __future__ import annotations

from liq_pipeline.pipeline import workers


def _burn(n: int) -> int:
    return sum(i * i for i in range(n))


def test_worker_cpu_is_counted_while_the_pool_is_open_and_zero_without_one():
    assert workers.cpu_s() == 0.0
    with workers.running_in(2):
        before = workers.cpu_s()
        assert workers.submit(_burn, 3_000_000).result() > 0
        assert workers.cpu_s() - before > 0.05
    assert workers.cpu_s() == 0.0
