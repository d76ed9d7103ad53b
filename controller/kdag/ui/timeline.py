"""Pure: a task's attempts from its pods, and the Gantt bars of a run (where the time of each attempt goes:
queued, from the pod's creation until its task container started, then running until it ended)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kdag_runner import keys

from kdag.render import TASK_CONTAINER
from kdag.ui.rows import when


@dataclass(frozen=True)
class Attempt:
    number: int
    pod: str
    phase: str
    """The pod's phase (Pending, Running, Succeeded, Failed)."""
    created: datetime | None
    started: datetime | None
    """When the task container started: the end of the queued time (scheduling, image, init containers)."""
    finished: datetime | None
    exit_code: int | None
    reason: str
    running: bool
    """Whether the task container runs now (its log can be followed)."""


def attempt_of(pod: Mapping[str, Any]) -> Attempt:
    metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
    container: Mapping[str, Any] = next(
        (c for c in status.get("containerStatuses") or [] if c.get("name") == TASK_CONTAINER), {}
    )
    state = container.get("state") or {}
    running, terminated = state.get("running") or {}, state.get("terminated") or {}
    waiting = state.get("waiting") or {}
    code = terminated.get("exitCode")
    return Attempt(
        number=int(((metadata.get("labels") or {}).get(keys.ATTEMPT_LABEL)) or 0),
        pod=str(metadata.get("name") or ""),
        phase=str(status.get("phase") or "Pending"),
        created=when(metadata.get("creationTimestamp")),
        started=when(running.get("startedAt") or terminated.get("startedAt")),
        finished=when(terminated.get("finishedAt")),
        exit_code=int(code) if code is not None else None,
        reason=str(terminated.get("reason") or waiting.get("reason") or ""),
        running=bool(running),
    )


def attempts(pods: Iterable[Mapping[str, Any]]) -> list[Attempt]:
    """A task's attempts, first first (pods kdag keeps: an earlier poke's pod may be gone)."""
    return sorted((attempt_of(pod) for pod in pods), key=lambda a: (a.number, a.created or datetime.min))


@dataclass(frozen=True)
class Bar:
    """One attempt on the Gantt chart, in seconds from the chart's start."""

    label: str
    task_id: str
    map_index: int | None
    attempt: int
    queued_from: float
    running_from: float | None
    until: float
    exit_code: int | None


@dataclass(frozen=True)
class Gantt:
    bars: list[Bar]
    span: float
    """Seconds from the first pod's creation to the last end (or now)."""


def gantt(tasks: Iterable[tuple[str, int | None, Iterable[Mapping[str, Any]]]], now: datetime) -> Gantt:
    """Bars for each attempt of each (task id, map index, its pods), ordered by when each was created."""
    found: list[tuple[datetime, str, int | None, Attempt]] = []
    for task_id, map_index, pods in tasks:
        for attempt in attempts(pods):
            if attempt.created is not None:
                found.append((attempt.created, task_id, map_index, attempt))
    if not found:
        return Gantt([], 0.0)
    found.sort(key=lambda item: item[0])
    origin = found[0][0]
    bars: list[Bar] = []
    for created, task_id, map_index, attempt in found:
        end = attempt.finished or (
            now if attempt.phase in ("Pending", "Running") else attempt.started or created
        )
        name = task_id if map_index is None else f"{task_id}[{map_index}]"
        bars.append(
            Bar(
                label=f"{name} #{attempt.number}",
                task_id=task_id,
                map_index=map_index,
                attempt=attempt.number,
                queued_from=(created - origin).total_seconds(),
                running_from=(attempt.started - origin).total_seconds() if attempt.started else None,
                until=max((end - origin).total_seconds(), (created - origin).total_seconds()),
                exit_code=attempt.exit_code,
            )
        )
    return Gantt(bars, max(bar.until for bar in bars))
