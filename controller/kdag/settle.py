"""Where one task attempt stands: a TaskRun's status brought in line with its pods, as a pure function.

`settle(status, pods, task, now, run_name=...)` says what to write to the TaskRun status, which Events to
post and the task's state for `graph.decide`; the DAGRun handler does the writing. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from kdag import names, questions
from kdag.api.models import TaskPhase, TaskRunStatus, TaskSpec
from kdag.attempts import AttemptResult, parse_attempt_result
from kdag.render import format_time
from kdag.retries import next_attempt_at
from kdag.task_state import TaskState

ACTIVE_PHASES = frozenset(
    {TaskPhase.PENDING, TaskPhase.RUNNING, TaskPhase.RETRYING, TaskPhase.UP_FOR_RESCHEDULE}
)


@dataclass(frozen=True)
class EventAction:
    """A Kubernetes Event to post on the TaskRun."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Settlement:
    """What settling one TaskRun against its pods comes to."""

    patch: TaskRunStatus | None
    """The status fields that change (serialize with `exclude_unset=True`: a None set here clears the
    field), or None when nothing changes."""
    state: TaskState | None
    """The task's state for `graph.decide`; None when it never started."""
    phase: TaskPhase
    """The task's phase after settling (the phase `patch` moves it to, or keeps)."""
    events: tuple[EventAction, ...] = ()
    finished: AttemptResult | None = None
    """The result of the attempt that finished in this pass (handoff timing, XCom bytes), else None."""
    delete_pods: tuple[str, ...] = ()
    """Pods to delete once the patch is written: those of earlier attempts that ended up for reschedule (a
    sensor's pokes). The newest attempt's pod stays: `kdag logs` reads `podName`."""


def attempt_of(pod: Mapping[str, Any]) -> int:
    """The attempt number of a task pod: its attempt label, else its name's `-N` suffix; 0 if neither."""
    label = ((pod.get("metadata") or {}).get("labels") or {}).get(names.ATTEMPT_LABEL, "")
    if label.isdigit():
        return int(label)
    suffix = str(pod["metadata"]["name"]).rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def _seconds(value: datetime) -> datetime:
    """A time as the status stores it: UTC, whole seconds (as `render.format_time` writes it)."""
    return value.astimezone(UTC).replace(microsecond=0)


def _seconds_up(value: datetime) -> datetime:
    """A time as the status stores it (UTC, whole seconds), rounded up: a poke never starts early."""
    whole = _seconds(value)
    return whole if whole == value else whole + timedelta(seconds=1)


def settle(
    status: TaskRunStatus,
    pods: Mapping[int, Mapping[str, Any]],
    task: TaskSpec,
    now: datetime,
    *,
    run_name: str,
    map_index: int | None = None,
) -> Settlement:
    """Bring one TaskRun's status in line with its pods (attempt number -> Pod) at `now`.

    A pod newer than the recorded attempt is adopted (a pass stopped before recording it); the current
    attempt's pod finishing settles the attempt (success, skip, reschedule, retry or failure); its pod gone
    before it finished is a failed attempt; a pod stuck before running updates the message; older pods are
    ignored. A reschedule (a sensor not done yet, exit code 5) makes the task UpForReschedule until the time
    its report names (`nextAttemptAt`) and counts in `reschedules`, never against the retries; once a newer
    attempt is recorded, the pods of earlier reschedules are to be deleted (`delete_pods`). A finished
    attempt's XCom keys are recorded whatever its outcome: what it stored stays until the next one.
    """
    phase = status.phase or TaskPhase.PENDING
    attempts = status.attempts or 0
    reschedules = status.reschedules or 0
    next_at = status.next_attempt_at
    latest = max(pods) if pods else 0
    changes: dict[str, Any] = {}
    events: list[EventAction] = []
    finished: AttemptResult | None = None
    skip_tasks = frozenset(status.skip_tasks or ())
    # What mapped tasks downstream expand over (graph.decide reads them on every pass).
    xcom_lengths = dict(status.xcom_lengths or {})
    xcom_keys = frozenset(status.xcom_keys or ())

    if phase in ACTIVE_PHASES and latest > attempts:
        # A pod made by a pass that stopped before recording it: adopt it, never make another.
        phase, attempts, next_at = TaskPhase.RUNNING, latest, None
        changes.update(
            phase=phase,
            attempts=attempts,
            pod_name=pods[latest]["metadata"]["name"],
            start_time=status.start_time or _seconds(now),
            next_attempt_at=None,
        )
    result: AttemptResult | None = None
    if phase == TaskPhase.RUNNING and attempts > 0:
        if attempts in pods:
            result = parse_attempt_result(pods[attempts])
        else:
            # The pod of the current attempt is gone (deleted, evicted) before it finished: a failed attempt.
            taskrun = names.taskrun_name(run_name, task.id, map_index)
            pod = status.pod_name or f"of attempt {attempts} of TaskRun {taskrun}"
            result = AttemptResult(finished=True, message=f"pod {pod} was deleted before it finished")
    if result is not None and result.finished:
        finished = result
        changes.update(exit_code=result.exit_code, message=result.message or None)
        if result.succeeded or result.skipped:
            # A skip is final, as in Airflow: no retry; graph.decide cascades it downstream.
            phase = TaskPhase.SUCCEEDED if result.succeeded else TaskPhase.SKIPPED
            changes.update(xcom_keys=list(result.xcom_keys), finish_time=_seconds(now))
            xcom_keys = frozenset(result.xcom_keys)
            if result.xcom_lengths:
                changes["xcom_lengths"] = xcom_lengths = dict(result.xcom_lengths)
            if result.rendered_map_index:
                changes["rendered_map_index"] = result.rendered_map_index
            if result.skip_tasks:
                # Kept in the status: every later pass hands them to graph.decide again.
                changes["skip_tasks"] = list(result.skip_tasks)
                skip_tasks = frozenset(result.skip_tasks)
        elif result.reschedule_at is not None:
            # Not a try: the next attempt pokes again at the time the sensor asked for, no pod meanwhile.
            phase = TaskPhase.UP_FOR_RESCHEDULE
            # Questions about other runs (a TriggerDagRunOperator's, a sensor's): the controller answers them.
            changes.update(questions.recorded(result.questions, attempts - reschedules))
            reschedules += 1
            next_at = _seconds_up(result.reschedule_at)
            changes.update(xcom_keys=list(result.xcom_keys), next_attempt_at=next_at, reschedules=reschedules)
            xcom_keys = frozenset(result.xcom_keys)
            events.append(
                EventAction(
                    "Normal",
                    "Rescheduled",
                    f"attempt {attempts} of task {task.id!r} is up for reschedule; "
                    f"the next attempt starts at {format_time(next_at)}",
                )
            )
        else:
            # A failed attempt's XComs stay stored, as in Airflow (cleared only when the next try starts):
            # a mapped instance's keys are what tasks downstream (all_done, one_failed) see of it.
            if frozenset(result.xcom_keys) != xcom_keys:
                changes["xcom_keys"] = list(result.xcom_keys)
                xcom_keys = frozenset(result.xcom_keys)
            # A failure the runner says is never retried (a sensor's timeout) fails the task at once.
            next_at = next_attempt_at(task, attempts, now, reschedules=reschedules) if result.retry else None
            if next_at is not None:
                phase = TaskPhase.RETRYING
                changes["next_attempt_at"] = _seconds(next_at)
                events.append(
                    EventAction(
                        "Warning",
                        "AttemptFailed",
                        f"attempt {attempts} of task {task.id!r} failed: {result.message}; "
                        f"retrying at {format_time(next_at)}",
                    )
                )
            else:
                phase = TaskPhase.FAILED
                changes["finish_time"] = _seconds(now)
                events.append(
                    EventAction(
                        "Warning",
                        "TaskFailed",
                        f"task {task.id!r} failed after {attempts} attempt(s): {result.message}",
                    )
                )
        changes["phase"] = phase
    elif result is not None and result.message and result.message != status.message:
        # Stuck before running (an image that cannot be pulled, ...): say so where users look.
        changes["message"] = result.message

    if phase != TaskPhase.SUCCEEDED:
        skip_tasks = frozenset()  # only a Succeeded task's requests count
    state = (
        None
        if phase == TaskPhase.PENDING and latest == 0
        else TaskState(
            phase,
            attempts,
            next_at,
            skip_tasks=skip_tasks,
            reschedules=reschedules,
            xcom_lengths=xcom_lengths,
            xcom_keys=xcom_keys,
        )
    )
    return Settlement(
        patch=TaskRunStatus.model_validate(changes) if changes else None,
        state=state,
        phase=phase,
        events=tuple(events),
        finished=finished,
        delete_pods=_earlier_pokes(pods, attempts) if reschedules else (),
    )


def _earlier_pokes(pods: Mapping[int, Mapping[str, Any]], attempts: int) -> tuple[str, ...]:
    """The pods of attempts before `attempts` that ended up for reschedule and are not being deleted yet.

    Their results are recorded (an attempt starts only after the one before it settled), so they hold
    nothing anyone reads; without this, every poke of a sensor would keep a pod until the run is deleted.
    """
    return tuple(
        str(pod["metadata"]["name"])
        for attempt, pod in sorted(pods.items())
        if attempt < attempts
        and not pod["metadata"].get("deletionTimestamp")
        and parse_attempt_result(pod).reschedule_at is not None
    )
