"""How one task attempt went, read from its containers' exit codes and termination messages.

`attempt_result` is the one reading of the contract of docs/design.md ("Delivery into a task pod"): the
runner's JSON termination report and its exit codes. The cluster reads a Pod through `parse_attempt_result`;
a local run (`kdag.local.run`) reads the same reports from its termination files and calls `attempt_result`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from kdag_runner.report import EXIT_RESCHEDULE, EXIT_SKIPPED

from kdag.api.models import MAX_SKIP_TASKS, TASK_ID_MAX, TASK_ID_PATTERN
from kdag.questions import Questions, describe, parse
from kdag.render import INPUTS_CONTAINER, SIDECAR_CONTAINER, TASK_CONTAINER, parse_time
from kdag.triggers import TriggerRequest

MESSAGE_MAX = 4096
_TASK_ID = re.compile(TASK_ID_PATTERN)


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
    skip_tasks: tuple[str, ...] = ()
    """Tasks a successful attempt asked to skip (`skipTasks` of its report), in report order, no repeats."""
    reschedule_at: datetime | None = None
    """A sensor not done yet (exit code 5, `reschedule` of its report): when its next attempt starts. Neither
    succeeded nor failed: not a try."""
    retry: bool = True
    """False for a failure that must not be retried (`"retry": false` of the runner's report: a sensor's
    timeout)."""
    xcom_lengths: Mapping[str, int] = field(default_factory=dict)
    """A success's `xcomLengths`: the length of each pushed list or dict, by ConfigMap key (mapping)."""
    rendered_map_index: str = ""
    """A mapped instance's `renderedMapIndex` (its map_index_template rendered), "" without one."""
    questions: Questions = field(default_factory=Questions)
    """A reschedule report's questions about other runs (`kdag.questions`): a TriggerDagRunOperator's
    request, an ExternalTaskSensor's question."""
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def trigger_request(self) -> TriggerRequest | None:
        """A TriggerDagRunOperator's request (`triggerDagRun` of a reschedule report): the run to start."""
        return self.questions.trigger


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
            rendered_map_index=_rendered_map_index(report),
        )
    if task.exit_code == EXIT_RESCHEDULE and sidecar is None and report and "reschedule" in report:
        # Only the runner reschedules (a Python task); a command that exits 5 has failed.
        keys, size = _pushed(report)
        try:
            at = parse_time(str(report["reschedule"]))
        except ValueError:
            problem = "invalid termination report: reschedule must be an RFC 3339 time"
            problem += f", got {report['reschedule']!r:.200}"
            return AttemptResult(
                finished=True, exit_code=task.exit_code, message=problem, xcom_keys=keys, xcom_bytes=size
            )
        questions, problem = parse(report)  # about other runs, e.g. a TriggerDagRunOperator's request
        if problem:
            return AttemptResult(
                finished=True, exit_code=task.exit_code, message=problem, xcom_keys=keys, xcom_bytes=size
            )
        return AttemptResult(
            finished=True,
            exit_code=task.exit_code,
            message=describe(questions, at),
            xcom_keys=keys,
            xcom_bytes=size,
            reschedule_at=at,
            questions=questions,
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
        # Only the runner's own report may refuse a retry (a sensor's timeout), never a user's command.
        retry = not (sidecar is None and task_report is not None and task_report.get("retry") is False)
        # The XComs stored before the task failed stay, as in Airflow: tasks downstream may pull them.
        keys, size = _pushed(report)
        return AttemptResult(
            finished=True,
            exit_code=task.exit_code,
            message=message,
            retry=retry,
            xcom_keys=keys,
            xcom_bytes=size,
        )
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
    skip, problem = _skip_tasks(report)
    if problem:
        return AttemptResult(finished=True, exit_code=0, message=problem, xcom_keys=keys, xcom_bytes=size)
    return AttemptResult(
        finished=True,
        succeeded=True,
        exit_code=0,
        xcom_keys=keys,
        xcom_bytes=size,
        skip_tasks=skip,
        xcom_lengths=_xcom_lengths(report),
        rendered_map_index=_rendered_map_index(report),
    )


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


def _xcom_lengths(report: Mapping[str, Any] | None) -> dict[str, int]:
    """The `xcomLengths` of a success report: ConfigMap key -> length; anything else in it is ignored."""
    value = (report or {}).get("xcomLengths")
    if not isinstance(value, Mapping):
        return {}
    return {
        str(key): length
        for key, length in value.items()
        if isinstance(length, int) and not isinstance(length, bool) and length >= 0
    }


def _rendered_map_index(report: Mapping[str, Any] | None) -> str:
    """A mapped instance's name from its report (at most 250 characters, as Airflow keeps it)."""
    value = (report or {}).get("renderedMapIndex")
    return value[:250] if isinstance(value, str) else ""


def _skip_tasks(report: Mapping[str, Any] | None) -> tuple[tuple[str, ...], str]:
    """The `skipTasks` of a success report (ids in order, repeats and strings that cannot be task ids
    dropped) and, when the key holds something else than a list of strings, why the report is refused."""
    value = (report or {}).get("skipTasks")
    if value is None:
        return (), ""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return (), f"invalid termination report: skipTasks must be a list of task ids, got {value!r:.200}"
    ids = tuple(dict.fromkeys(i for i in value if len(i) <= TASK_ID_MAX and _TASK_ID.match(i)))
    if len(ids) > MAX_SKIP_TASKS:
        return (), f"invalid termination report: skipTasks names {len(ids)} tasks (at most {MAX_SKIP_TASKS})"
    return ids, ""


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
    inputs_term = terms.get(INPUTS_CONTAINER)
    if task_term is None and inputs_term is not None and inputs_term.get("exitCode"):
        # The xcomInputs check stopped the pod before the command could fail to start: its report says
        # which input and is never retried (`"retry": false`), as the runner's own reports are read.
        result = attempt_result(_termination(inputs_term, default_reason="Error"))
        return replace(result, started_at=started_at, finished_at=finished_at)
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
