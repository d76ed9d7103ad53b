"""Process-wide state of the handlers: settings, the API client, one lock and one retry timer per run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kdag.client import KubeApi
from kdag.settings import ControllerSettings

RunKey = tuple[str, str]
"""(namespace, DAGRun name)."""


@dataclass
class RunState:
    """Coalesces reconcile requests: while a pass runs, new requests only mark the run dirty."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    dirty: bool = False
    wake: asyncio.TimerHandle | None = None
    wake_at: float | None = None


@dataclass
class Runtime:
    settings: ControllerSettings = field(default_factory=ControllerSettings)
    kubeconfig: str | None = None
    api: KubeApi | None = None
    runs: dict[RunKey, RunState] = field(default_factory=dict)
    rbac_ready: set[str] = field(default_factory=set)
    finished_seen_at: dict[tuple[str, str], float] = field(default_factory=dict)
    """(namespace, pod name) -> wall time the controller saw the pod finish (handoff latency)."""

    def client(self) -> KubeApi:
        if self.api is None:
            self.api = KubeApi(self.kubeconfig)
        return self.api

    def run_state(self, key: RunKey) -> RunState:
        return self.runs.setdefault(key, RunState())


RUNTIME = Runtime()
_background: set[asyncio.Task[None]] = set()


async def coalesced(key: RunKey, reconcile: Callable[[RunKey], Awaitable[None]]) -> None:
    """Run `reconcile(key)` now, or make the pass already under way run once more."""
    state = RUNTIME.run_state(key)
    state.dirty = True
    if state.lock.locked():
        return
    async with state.lock:
        while state.dirty:
            state.dirty = False
            await reconcile(key)


def wake_later(key: RunKey, delay: float, reconcile: Callable[[RunKey], Awaitable[None]]) -> None:
    """Re-reconcile the run after `delay` seconds (a retry's backoff); keeps only the earliest timer."""
    loop = asyncio.get_running_loop()
    state = RUNTIME.run_state(key)
    when = loop.time() + max(delay, 0.0)
    if state.wake is not None and state.wake_at is not None and state.wake_at <= when:
        return
    if state.wake is not None:
        state.wake.cancel()

    def fire() -> None:
        state.wake = None
        state.wake_at = None
        task = loop.create_task(coalesced(key, reconcile))
        _background.add(task)
        task.add_done_callback(_background.discard)

    state.wake = loop.call_later(max(delay, 0.0), fire)
    state.wake_at = when
