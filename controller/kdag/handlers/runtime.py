"""The controller's shared state, kept in kopf's `memo`: settings, the API client, per-run locks and timers,
the parsed DAG versions.

`build_registry` passes one `Runtime` to kopf as the memo; kopf hands every handler a shallow copy, so the
fields are made once, before the operator starts, and only mutated in place afterwards (never rebound).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kdag.dag_versions import VersionCache
from kdag.handlers.run_objects import ObjectCache
from kdag.kube import KubeApi
from kdag.settings import ControllerSettings

RunKey = tuple[str, str]
"""(namespace, DAGRun name)."""

Reconcile = Callable[[RunKey], Awaitable[None]]


@dataclass
class RunState:
    """Coalesces reconcile requests: while a pass runs, new requests only mark the run dirty."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    dirty: bool = False
    wake: asyncio.TimerHandle | None = None
    wake_at: float | None = None
    status_written_at: float | None = None
    """When a pass last wrote the run's status (monotonic clock): progress is written at most once per
    `settings.run_status_interval_seconds` (`run_status.write_run_status`)."""
    status_due_in: float | None = None
    """Seconds until the progress a pass held back is due: the pass then asks for a pass at that time."""
    reported_error: str = ""
    """The last error a failed pass posted an Event about (`run_failures.report_retry`): once each."""


class StopFlag:
    """Tells a DAG's schedule loop to stop (what kopf's DaemonStopped is to a daemon): false until set;
    `wait` sleeps until it is set or the timeout passes."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> StopFlag:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        return self


@dataclass
class Schedule:
    """The schedule of one DAG running in this process (`handlers.dags.follow_schedule`)."""

    body: dict[str, Any]
    """The DAG as last seen: updated in place from its watch events, read by the loop on each pass."""
    stop: StopFlag
    task: asyncio.Task[None]


@dataclass
class Runtime:
    """Everything the handlers share in one controller process (kopf's memo)."""

    settings: ControllerSettings
    api: KubeApi
    runs: dict[RunKey, RunState] = field(default_factory=dict)
    rbac_ready: set[str] = field(default_factory=set)
    """Namespaces whose task ServiceAccount, Role and RoleBinding this process has made."""
    finished_seen_at: dict[tuple[str, str], float] = field(default_factory=dict)
    """(namespace, TaskRun name) -> wall time the controller saw its pod finish (handoff latency)."""
    background: set[asyncio.Task[None]] = field(default_factory=set)
    """Tasks started by timers, kept referenced until they end."""
    schedules: dict[RunKey, Schedule] = field(default_factory=dict)
    """(namespace, DAG name) -> its schedule, for each DAG with a time schedule."""
    dag_versions: VersionCache = field(default_factory=VersionCache)
    """The DAG versions runs follow, parsed once (`kdag.dag_versions`)."""
    dags_seen: dict[RunKey, tuple[str, int | None]] = field(default_factory=dict)
    """(namespace, DAG name) -> (uid, generation) this process validated (`dags.dag_event`)."""
    objects: ObjectCache = field(default_factory=ObjectCache)
    """The TaskRuns and pods of the runs under way, kept from watch events and writes (`run_objects`)."""

    def run_state(self, key: RunKey) -> RunState:
        return self.runs.setdefault(key, RunState())

    def forget_run(self, key: RunKey) -> None:
        """Drop a deleted run's lock, its kept objects, and cancel its timer."""
        self.objects.forget(key)
        state = self.runs.pop(key, None)
        if state is not None and state.wake is not None:
            state.wake.cancel()


async def coalesced(runtime: Runtime, key: RunKey, reconcile: Reconcile) -> None:
    """Run `reconcile(key)` now, or make the pass already under way run once more."""
    state = runtime.run_state(key)
    state.dirty = True
    if state.lock.locked():
        return
    async with state.lock:
        while state.dirty:
            state.dirty = False
            await reconcile(key)


def wake_later(runtime: Runtime, key: RunKey, delay: float, reconcile: Reconcile) -> None:
    """Re-reconcile the run after `delay` seconds (a retry's backoff); keeps only the earliest timer."""
    loop = asyncio.get_running_loop()
    state = runtime.run_state(key)
    when = loop.time() + max(delay, 0.0)
    if state.wake is not None and state.wake_at is not None and state.wake_at <= when:
        return
    if state.wake is not None:
        state.wake.cancel()

    def fire() -> None:
        state.wake = None
        state.wake_at = None
        task = loop.create_task(coalesced(runtime, key, reconcile))
        runtime.background.add(task)
        task.add_done_callback(runtime.background.discard)

    state.wake = loop.call_later(max(delay, 0.0), fire)
    state.wake_at = when
