"""A running DAGRun's progress is written at most once per `run_status_interval_seconds`; its phase, first
status and end at once; the pass that holds progress back says when it is due (so the newest is written)."""

from __future__ import annotations

import time

from kdag.handlers.run_status import _hold_back
from kdag.handlers.runtime import Runtime
from kdag.settings import ControllerSettings

KEY = ("ns", "run")
RUNNING = {
    "phase": "Running",
    "observedGeneration": 1,
    "startTime": "2026-01-01T00:00:00Z",
    "progress": "1/9",
}


def runtime(interval: int = 3) -> Runtime:
    return Runtime(settings=ControllerSettings(run_status_interval_seconds=interval), api=None)  # type: ignore[arg-type]


def test_progress_waits_for_the_interval_and_says_when_it_is_due() -> None:
    rt = runtime()
    assert not _hold_back(rt, KEY, {}, RUNNING, finished=False)  # the first status: at once
    rt.run_state(KEY).status_written_at = time.monotonic()
    later = {**RUNNING, "progress": "2/9"}
    assert _hold_back(rt, KEY, RUNNING, later, finished=False)
    due = rt.run_state(KEY).status_due_in
    assert due is not None and 2.5 < due <= 3
    rt.run_state(KEY).status_written_at = time.monotonic() - 3.1
    assert not _hold_back(rt, KEY, RUNNING, later, finished=False)


def test_a_change_of_phase_or_the_end_is_written_at_once() -> None:
    rt = runtime()
    rt.run_state(KEY).status_written_at = time.monotonic()
    assert not _hold_back(rt, KEY, RUNNING, {**RUNNING, "phase": "Failed"}, finished=True)
    assert not _hold_back(rt, KEY, RUNNING, {**RUNNING, "observedGeneration": 2}, finished=False)
    assert not _hold_back(rt, KEY, RUNNING, {**RUNNING, "phase": "Succeeded"}, finished=True)


def test_an_interval_of_zero_writes_every_change() -> None:
    rt = runtime(0)
    rt.run_state(KEY).status_written_at = time.monotonic()
    assert not _hold_back(rt, KEY, RUNNING, {**RUNNING, "progress": "2/9"}, finished=False)
