"""How one task attempt went, read from its containers' exit codes and termination messages.

`attempt_result` is the one reading of the contract of docs/design.md ("Delivery into a task pod"): the
runner's JSON termination report and its exit codes. The cluster reads a Pod through `parse_attempt_result`;
a local run (`kdag.local.run`) reads the same reports from its termination files and calls `attempt_result`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from kdag_runner.main import EXIT_SKIPPED

from kdag.render import SIDECAR_CONTAINER, TASK_CONTAINER, parse_time

MESSAGE_MAX = 4096


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt's Pod says about how the attempt went."""

    finished: bool
    """Every container (the sidecar included) has terminated, or the pod failed as a whole."""
    succeeded: bool = False
    skipped: bool = False
    """The task skipped itself (AirflowSkipException): neither succeeded nor failed, never retried."""
    exit_code: int | None = None
    message: str = ""
    """Why it failed or skipped, or why it is stuck waiting (e.g. an image that cannot be pulled)."""
    xcom_keys: tuple[str, ...] = ()
    xcom_bytes: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Termination:
    """How one container of a finished attempt ended."""

    exit_code: int | None
    message: str = ""
    """Its termination message: a kdag container's JSON report, else any text (a log tail in a pod)."""
    reason: str | None = None
    """Why it terminated as Kubernetes says (`Error`, `OOMKilled`); None where there is no kubelet."""


def attempt_result(
    task: Termination, sidecar: Termination | None = None, *, fallback: str = ""
) -> AttemptResult:
    """The result of a finished attempt: succeeded, skipped or failed, its message and the XComs it pushed.

    `task` is the task's container; `sidecar` the `xcom` collector that pushes a command task's XComs, None
    for a Python task, whose container (the runner) pushes and reports itself. `fallback` stands for a
    container that left no termination message, as Kubernetes' FallbackToLogsOnError puts its log tail
    there: a local run passes its log's last line.
    """
    pusher = sidecar if sidecar is not None else task
    report = _report(pusher.message)
    if task.exit_code == EXIT_SKIPPED and sidecar is None and report is not None and "skipped" in report:
        # Only the runner skips (a Python task, no sidecar); a command that exits 4 has failed.
        keys, size = _pushed(report)
        return AttemptResult(
            finished=True,
            skipped=True,
            exit_code=task.exit_code,
            message=str(report["skipped"]),
            xcom_keys=keys,
            xcom_bytes=size,
        )
    if task.exit_code != 0:
        task_report = _report(task.message)
        if task_report is not None and "error" in task_report:
            message = str(task_report["error"])
        else:
            head = f"exit code {task.exit_code}"
            message = f"{task.reason} ({head})" if task.reason else head
            detail = task.message.strip() or fallback
            if detail:
                message += ": " + _tail(detail)
        return AttemptResult(finished=True, exit_code=task.exit_code, message=message)
    if pusher.exit_code != 0 or (report is not None and "error" in report):
        if report is not None and "error" in report:
            message = str(report["error"])
        else:
            message = _tail(pusher.message.strip() or fallback)
        return AttemptResult(
            finished=True,
            exit_code=pusher.exit_code,
            message=message or f"XCom push failed (exit code {pusher.exit_code})",
        )
    keys, size = _pushed(report)
    return AttemptResult(finished=True, succeeded=True, exit_code=0, xcom_keys=keys, xcom_bytes=size)


_STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ErrImageNeverPull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


def _statuses(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = pod.get("status") or {}
    found: dict[str, Mapping[str, Any]] = {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for entry in status.get(key) or []:
            found[entry["name"]] = entry
    return found


def _terminated(entry: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if entry is None:
        return None
    term = (entry.get("state") or {}).get("terminated")
    return term if isinstance(term, Mapping) else None


def _termination(term: Mapping[str, Any] | None, default_reason: str | None = None) -> Termination:
    """A container's `state.terminated` as a Termination (exit code None when it has none)."""
    term = term or {}
    return Termination(
        exit_code=term.get("exitCode"),
        message=str(term.get("message") or ""),
        reason=term.get("reason") or default_reason,
    )


def _report(text: str) -> dict[str, Any] | None:
    """The JSON report a kdag container left (its last JSON line naming xcomKeys or an error), or None."""
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and ("xcomKeys" in value or "error" in value):
            return value
    return None


def _pushed(report: Mapping[str, Any] | None) -> tuple[tuple[str, ...], int | None]:
    """The XCom keys and store size a runner's report names."""
    keys = tuple(str(k) for k in (report or {}).get("xcomKeys") or [])
    size = (report or {}).get("bytes")
    return keys, int(size) if isinstance(size, int) else None


def _tail(text: str) -> str:
    return text if len(text) <= MESSAGE_MAX else "..." + text[-MESSAGE_MAX:]


def parse_attempt_result(pod: Mapping[str, Any]) -> AttemptResult:
    """How the attempt of this Pod went: finished or not, success or skip, exit code, message, XCom keys."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    statuses = _statuses(pod)
    expected = [c["name"] for c in spec.get("initContainers") or []] + [
        c["name"] for c in spec.get("containers") or []
    ]
    terms = {name: _terminated(statuses.get(name)) for name in expected}
    phase = status.get("phase")
    all_terminated = bool(expected) and all(term is not None for term in terms.values())
    started_at = parse_time(status["startTime"]) if status.get("startTime") else None
    finish_times = [parse_time(t["finishedAt"]) for t in terms.values() if t and t.get("finishedAt")]
    finished_at = max(finish_times) if finish_times else None

    if not all_terminated and phase != "Failed":
        waiting = [
            f"container {name}: {w.get('reason')}: {w.get('message') or ''}".rstrip(": ")
            for name in expected
            for w in [((statuses.get(name) or {}).get("state") or {}).get("waiting") or {}]
            if w.get("reason") in _STUCK_REASONS
        ]
        return AttemptResult(finished=False, message="; ".join(waiting), started_at=started_at)

    task_term = terms.get(TASK_CONTAINER)
    if status.get("reason") == "DeadlineExceeded":
        deadline = spec.get("activeDeadlineSeconds")
        return AttemptResult(
            finished=True,
            exit_code=task_term.get("exitCode") if task_term else None,
            message=f"timed out after {deadline} s",
            started_at=started_at,
            finished_at=finished_at,
        )
    if task_term is None:
        reason = status.get("reason") or phase or "unknown"
        detail = status.get("message") or ""
        return AttemptResult(
            finished=True,
            message=f"pod {reason}: {detail}".rstrip(": "),
            started_at=started_at,
            finished_at=finished_at,
        )
    # A sidecar that never terminated (a pod failed as a whole) pushed nothing: exit code None, no report.
    sidecar = _termination(terms[SIDECAR_CONTAINER]) if SIDECAR_CONTAINER in terms else None
    result = attempt_result(_termination(task_term, default_reason="Error"), sidecar)
    return replace(result, started_at=started_at, finished_at=finished_at)
