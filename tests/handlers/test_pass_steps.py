"""The steps of one reconcile pass (a fan-out's task starts) run concurrently, but never all at once."""

from __future__ import annotations

import asyncio

import pytest
from kdag.handlers import dagruns


def test_a_wide_pass_runs_every_step_at_most_a_connection_pools_worth_at_once() -> None:
    running, peak, done = 0, 0, []

    async def step(i: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1
        done.append(i)
        if i in (7, 300):
            raise RuntimeError(f"step {i} failed")

    with pytest.raises(RuntimeError, match="step 7 failed"):
        asyncio.run(dagruns._all(*(step(i) for i in range(1000))))
    assert sorted(done) == list(range(1000))  # a failure stops no other step
    assert 1 < peak <= dagruns.STEPS_AT_ONCE == 64
