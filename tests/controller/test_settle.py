"""settle.settle: one TaskRun's status brought in line with its pods, every branch, no API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from kdag import names
from kdag.api.models import TaskPhase, TaskRunStatus, TaskSpec
from kdag.attempts import AttemptResult
from kdag.settle import EventAction, Settlement, attempt_of, settle
from kdag.task_state import TaskState
from test_render import RUN, SETTINGS, pod_with, render, running, terminated

NOW = datetime(2026, 1, 2, 3, 10, tzinfo=UTC)
STARTED = "2026-01-02T03:04:00Z"
PY = RUN.dag.resolved_task("hello_task", SETTINGS.runner_image)
RETRIED = PY.model_copy(update={"retries": 2, "retry_delay_seconds": 10})
SHELL = RUN.dag.resolved_task("shell", SETTINGS.runner_image)


def status(**fields: Any) -> TaskRunStatus:
    """A TaskRun status as the handler reads it (camelCase, as stored)."""
    return TaskRunStatus.model_validate(fields)


def running_status(attempts: int = 1, task_id: str = "hello_task") -> TaskRunStatus:
    return status(
        phase="Running",
        attempts=attempts,
        podName=names.pod_name(RUN.name, task_id, attempts, run_uid=RUN.uid),
        startTime=STARTED,
    )


def py_pod(attempt: int, phase: str, containers: list[Any], **pod_status: Any) -> dict[str, Any]:
    return pod_with(render("hello_task", attempt), phase, containers, **pod_status)


def report(**fields: Any) -> str:
    return json.dumps(fields)


def patch_of(outcome: Settlement) -> dict[str, Any]:
    assert outcome.patch is not None
    return outcome.patch.model_dump(by_alias=True, exclude_unset=True, mode="json")


def settled(
    current: TaskRunStatus, pods: dict[int, dict[str, Any]], task: TaskSpec = PY, now: datetime = NOW
) -> Settlement:
    return settle(current, pods, task, now, run_name=RUN.name)


# --- nothing to do ----------------------------------------------------------------------------------------


def test_never_started_has_no_state_and_no_patch() -> None:
    for current in (status(), status(phase="Pending")):
        outcome = settled(current, {})
        assert outcome == Settlement(patch=None, state=None, phase=TaskPhase.PENDING)


def test_a_running_attempt_changes_nothing() -> None:
    outcome = settled(running_status(), {1: py_pod(1, "Running", [running("task")])})
    assert outcome == Settlement(
        patch=None, state=TaskState(TaskPhase.RUNNING, attempts=1), phase=TaskPhase.RUNNING
    )


def test_a_finished_task_is_left_alone() -> None:
    done = status(phase="Succeeded", attempts=1, startTime=STARTED, finishTime=STARTED)
    pod = py_pod(1, "Succeeded", [terminated("task", 0, report(xcomKeys=[], bytes=2))])
    outcome = settled(done, {1: pod})
    assert outcome == Settlement(
        patch=None, state=TaskState(TaskPhase.SUCCEEDED, attempts=1), phase=TaskPhase.SUCCEEDED
    )


# --- an attempt that finished -----------------------------------------------------------------------------


def test_success_records_keys_exit_code_and_finish_time() -> None:
    pod = py_pod(1, "Succeeded", [terminated("task", 0, report(xcomKeys=["return_value"], bytes=64))])
    outcome = settled(running_status(), {1: pod})
    assert patch_of(outcome) == {
        "phase": "Succeeded",
        "exitCode": 0,
        "message": None,
        "xcomKeys": ["return_value"],
        "finishTime": "2026-01-02T03:10:00Z",
    }
    assert outcome.state == TaskState(TaskPhase.SUCCEEDED, attempts=1)
    assert outcome.phase == TaskPhase.SUCCEEDED
    assert outcome.events == ()
    assert outcome.finished is not None and outcome.finished.succeeded
    assert outcome.finished.xcom_bytes == 64


def test_success_keeps_the_tasks_it_asked_to_skip_for_every_later_decision() -> None:
    branch = report(xcomKeys=["return_value"], bytes=9, skipTasks=["late", "never", "late"])
    pod = py_pod(1, "Succeeded", [terminated("task", 0, branch)])
    outcome = settled(running_status(), {1: pod})
    assert patch_of(outcome)["skipTasks"] == ["late", "never"]
    asked = frozenset({"late", "never"})
    assert outcome.state == TaskState(TaskPhase.SUCCEEDED, attempts=1, skip_tasks=asked)
    # A later pass reads them back from the status: graph.decide sees them as long as the run goes on.
    done = status(phase="Succeeded", attempts=1, finishTime=STARTED, skipTasks=["late", "never"])
    again = settled(done, {1: pod})
    assert again.patch is None
    assert again.state == TaskState(TaskPhase.SUCCEEDED, attempts=1, skip_tasks=asked)


def test_a_success_without_skip_tasks_writes_none() -> None:
    pod = py_pod(1, "Succeeded", [terminated("task", 0, report(xcomKeys=[], bytes=2, skipTasks=[]))])
    outcome = settled(running_status(), {1: pod})
    assert "skipTasks" not in patch_of(outcome)
    assert outcome.state == TaskState(TaskPhase.SUCCEEDED, attempts=1)


def test_skip_tasks_of_a_failed_attempt_are_not_kept() -> None:
    failed = report(xcomKeys=[], bytes=2, skipTasks=["x"], error="ValueError: boom")
    pod = py_pod(1, "Failed", [terminated("task", 1, failed, reason="Error")])
    outcome = settled(running_status(), {1: pod})
    assert "skipTasks" not in patch_of(outcome)
    assert outcome.state == TaskState(TaskPhase.FAILED, attempts=1)


def test_a_malformed_skip_list_fails_the_attempt() -> None:
    bad = report(xcomKeys=[], bytes=2, skipTasks="late")
    pod = py_pod(1, "Succeeded", [terminated("task", 0, bad)])
    outcome = settled(running_status(), {1: pod}, RETRIED)
    assert outcome.phase == TaskPhase.RETRYING
    assert "skipTasks must be a list of task ids" in patch_of(outcome)["message"]


def test_a_skip_is_final_even_with_retries_left() -> None:
    skip = report(xcomKeys=["seen"], bytes=20, skipped="nothing new today")
    pod = py_pod(1, "Failed", [terminated("task", 4, skip, reason="Error")])
    outcome = settled(running_status(), {1: pod}, RETRIED)
    assert patch_of(outcome) == {
        "phase": "Skipped",
        "exitCode": 4,
        "message": "nothing new today",
        "xcomKeys": ["seen"],
        "finishTime": "2026-01-02T03:10:00Z",
    }
    assert outcome.state == TaskState(TaskPhase.SKIPPED, attempts=1)
    assert outcome.events == ()


def test_failure_with_retries_left_is_retrying_with_an_attempt_failed_event() -> None:
    error = report(xcomKeys=[], bytes=2, error="ValueError: boom")
    pod = py_pod(1, "Failed", [terminated("task", 1, error, reason="Error")])
    outcome = settled(running_status(), {1: pod}, RETRIED)
    due = NOW + timedelta(seconds=10)
    assert patch_of(outcome) == {
        "phase": "Retrying",
        "exitCode": 1,
        "message": "ValueError: boom",
        "nextAttemptAt": "2026-01-02T03:10:10Z",
    }
    assert outcome.state == TaskState(TaskPhase.RETRYING, attempts=1, next_attempt_at=due)
    assert outcome.events == (
        EventAction(
            "Warning",
            "AttemptFailed",
            "attempt 1 of task 'hello_task' failed: ValueError: boom; retrying at 2026-01-02T03:10:10Z",
        ),
    )
    assert outcome.finished is not None and not outcome.finished.succeeded


def test_the_retry_time_is_written_in_whole_seconds() -> None:
    now = NOW + timedelta(microseconds=700_000)
    pod = py_pod(1, "Failed", [terminated("task", 1, report(error="E: x"), reason="Error")])
    outcome = settled(running_status(), {1: pod}, RETRIED, now)
    assert patch_of(outcome)["nextAttemptAt"] == "2026-01-02T03:10:10Z"
    assert outcome.state is not None and outcome.state.next_attempt_at == now + timedelta(seconds=10)


def test_failure_of_the_last_attempt_fails_the_task_with_a_task_failed_event() -> None:
    error = report(xcomKeys=[], bytes=2, error="ValueError: boom")
    pod = py_pod(3, "Failed", [terminated("task", 1, error, reason="Error")])
    outcome = settled(running_status(attempts=3), {3: pod}, RETRIED)
    assert patch_of(outcome) == {
        "phase": "Failed",
        "exitCode": 1,
        "message": "ValueError: boom",
        "finishTime": "2026-01-02T03:10:00Z",
    }
    assert outcome.state == TaskState(TaskPhase.FAILED, attempts=3)
    assert outcome.events == (
        EventAction("Warning", "TaskFailed", "task 'hello_task' failed after 3 attempt(s): ValueError: boom"),
    )


def test_timeout_is_a_failed_attempt() -> None:
    pod = pod_with(
        render("shell"),
        "Failed",
        [terminated("task", 137, reason="Error")],
        init=[running("xcom")],
        reason="DeadlineExceeded",
        message="Pod was active on the node longer than the specified deadline",
    )
    outcome = settled(running_status(task_id="shell"), {1: pod}, SHELL)
    assert patch_of(outcome) == {
        "phase": "Failed",
        "exitCode": 137,
        "message": "timed out after 30 s",
        "finishTime": "2026-01-02T03:10:00Z",
    }
    assert outcome.events[0].reason == "TaskFailed"


def test_an_unknown_exit_code_fails_with_the_reason_and_log_tail() -> None:
    pod = py_pod(1, "Failed", [terminated("task", 137, "Killed", reason="OOMKilled")])
    outcome = settled(running_status(), {1: pod})
    assert patch_of(outcome) == {
        "phase": "Failed",
        "exitCode": 137,
        "message": "OOMKilled (exit code 137): Killed",
        "finishTime": "2026-01-02T03:10:00Z",
    }


def test_exit_code_4_without_a_skip_report_is_a_failure_not_a_skip() -> None:
    pod = py_pod(1, "Failed", [terminated("task", 4, "oops", reason="Error")])
    outcome = settled(running_status(), {1: pod})
    assert outcome.phase == TaskPhase.FAILED
    assert patch_of(outcome)["message"] == "Error (exit code 4): oops"


def test_xcom_push_failure_of_the_sidecar_fails_the_attempt() -> None:
    error = report(error="XCom 'x' of task 'shell' is not JSON-serialisable: set")
    pod = pod_with(
        render("shell"),
        "Succeeded",
        [terminated("task", 0)],
        init=[terminated("xcom", 3, error, reason="Error")],
    )
    outcome = settled(running_status(task_id="shell"), {1: pod}, SHELL)
    assert patch_of(outcome) == {
        "phase": "Failed",
        "exitCode": 3,
        "message": "XCom 'x' of task 'shell' is not JSON-serialisable: set",
        "finishTime": "2026-01-02T03:10:00Z",
    }
    assert outcome.events[0].message == (
        "task 'shell' failed after 1 attempt(s): XCom 'x' of task 'shell' is not JSON-serialisable: set"
    )


def test_a_pod_deleted_before_it_finished_is_a_failed_attempt() -> None:
    outcome = settled(running_status(attempts=2), {}, RETRIED)
    pod_name = names.pod_name(RUN.name, "hello_task", 2, run_uid=RUN.uid)
    message = f"pod {pod_name} was deleted before it finished"
    assert patch_of(outcome) == {
        "phase": "Retrying",
        "exitCode": None,
        "message": message,
        "nextAttemptAt": "2026-01-02T03:10:20Z",  # the delay doubles after the second attempt
    }
    assert outcome.finished == AttemptResult(finished=True, message=message)
    assert outcome.events[0].reason == "AttemptFailed"


# --- pods of other attempts -------------------------------------------------------------------------------


def test_an_orphan_pod_of_an_older_attempt_is_ignored() -> None:
    old = py_pod(1, "Failed", [terminated("task", 1, report(error="E: old"), reason="Error")])
    current = py_pod(2, "Running", [running("task")])
    outcome = settled(running_status(attempts=2), {1: old, 2: current}, RETRIED)
    assert outcome == Settlement(
        patch=None, state=TaskState(TaskPhase.RUNNING, attempts=2), phase=TaskPhase.RUNNING
    )


def test_a_pod_of_a_newer_attempt_is_adopted() -> None:
    retrying = status(
        phase="Retrying",
        attempts=1,
        podName=names.pod_name(RUN.name, "hello_task", 1, run_uid=RUN.uid),
        startTime=STARTED,
        exitCode=1,
        message="E: first",
        nextAttemptAt="2026-01-02T03:09:00Z",
    )
    old = py_pod(1, "Failed", [terminated("task", 1, report(error="E: first"), reason="Error")])
    newer = py_pod(2, "Running", [running("task")])
    outcome = settled(retrying, {1: old, 2: newer}, RETRIED)
    assert patch_of(outcome) == {
        "phase": "Running",
        "attempts": 2,
        "podName": names.pod_name(RUN.name, "hello_task", 2, run_uid=RUN.uid),
        "startTime": STARTED,
        "nextAttemptAt": None,
    }
    assert outcome.state == TaskState(TaskPhase.RUNNING, attempts=2)
    assert outcome.finished is None


def test_an_adopted_first_pod_gets_a_start_time_and_is_settled_in_the_same_pass() -> None:
    pod = py_pod(1, "Succeeded", [terminated("task", 0, report(xcomKeys=[], bytes=2))])
    outcome = settled(status(phase="Pending"), {1: pod})
    assert patch_of(outcome) == {
        "phase": "Succeeded",
        "attempts": 1,
        "podName": names.pod_name(RUN.name, "hello_task", 1, run_uid=RUN.uid),
        "startTime": "2026-01-02T03:10:00Z",
        "nextAttemptAt": None,
        "exitCode": 0,
        "message": None,
        "xcomKeys": [],
        "finishTime": "2026-01-02T03:10:00Z",
    }
    assert outcome.state == TaskState(TaskPhase.SUCCEEDED, attempts=1)


# --- stuck before running ---------------------------------------------------------------------------------


def test_a_stuck_pod_says_why_once() -> None:
    waiting = {"name": "task", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}
    pod = py_pod(1, "Pending", [waiting])
    outcome = settled(running_status(), {1: pod})
    assert patch_of(outcome) == {"message": "container task: ImagePullBackOff: not found"}
    assert outcome.state == TaskState(TaskPhase.RUNNING, attempts=1)
    assert outcome.phase == TaskPhase.RUNNING
    assert outcome.finished is None
    said = running_status().model_copy(update={"message": "container task: ImagePullBackOff: not found"})
    assert settled(said, {1: pod}).patch is None


# --- attempt numbers --------------------------------------------------------------------------------------


def test_attempt_of_reads_the_label_else_the_name_suffix() -> None:
    assert attempt_of(render("hello_task", 3)) == 3
    name = names.pod_name(RUN.name, "hello_task", 2, run_uid=RUN.uid)
    unlabelled = {"metadata": {"name": name, "labels": {}}}
    assert attempt_of(unlabelled) == 2
    assert attempt_of({"metadata": {"name": "no-number-here"}}) == 0


# --- sensors: reschedules (runner exit code 5) ------------------------------------------------------------


def test_a_reschedule_is_up_for_reschedule_until_the_reported_time_and_no_try() -> None:
    poke = report(xcomKeys=["polled"], bytes=20, reschedule="2026-01-02T03:11:00Z")
    pod = py_pod(2, "Failed", [terminated("task", 5, poke, reason="Error")])
    current = running_status(attempts=2).model_copy(update={"reschedules": 1})
    outcome = settled(current, {2: pod}, RETRIED)
    at = datetime(2026, 1, 2, 3, 11, tzinfo=UTC)
    assert patch_of(outcome) == {
        "phase": "UpForReschedule",
        "exitCode": 5,
        "message": "up for reschedule: the next attempt starts at 2026-01-02T03:11:00Z",
        "xcomKeys": ["polled"],
        "nextAttemptAt": "2026-01-02T03:11:00Z",
        "reschedules": 2,
    }
    assert outcome.state == TaskState(
        TaskPhase.UP_FOR_RESCHEDULE, attempts=2, next_attempt_at=at, reschedules=2
    )
    assert outcome.phase == TaskPhase.UP_FOR_RESCHEDULE
    assert not outcome.phase.finished
    assert outcome.events == (
        EventAction(
            "Normal",
            "Rescheduled",
            "attempt 2 of task 'hello_task' is up for reschedule; "
            "the next attempt starts at 2026-01-02T03:11:00Z",
        ),
    )
    assert outcome.finished is not None and outcome.finished.reschedule_at == at


def test_a_reschedule_time_is_rounded_up_to_whole_seconds() -> None:
    poke = report(xcomKeys=[], bytes=2, reschedule="2026-01-02T03:11:00.250+00:00")
    pod = py_pod(1, "Failed", [terminated("task", 5, poke, reason="Error")])
    outcome = settled(running_status(), {1: pod})
    assert patch_of(outcome)["nextAttemptAt"] == "2026-01-02T03:11:01Z"  # never before the time asked


def test_an_up_for_reschedule_task_waits_then_adopts_its_next_pod() -> None:
    waiting = status(
        phase="UpForReschedule",
        attempts=1,
        reschedules=1,
        startTime=STARTED,
        nextAttemptAt="2026-01-02T03:11:00Z",
    )
    done = py_pod(1, "Failed", [terminated("task", 5, report(xcomKeys=[], bytes=2, reschedule="x"))])
    outcome = settled(waiting, {1: done})
    at = datetime(2026, 1, 2, 3, 11, tzinfo=UTC)
    assert outcome == Settlement(
        patch=None,
        state=TaskState(TaskPhase.UP_FOR_RESCHEDULE, attempts=1, next_attempt_at=at, reschedules=1),
        phase=TaskPhase.UP_FOR_RESCHEDULE,
    )
    # A pass that made pod 2 and stopped before recording it: the pod is adopted, the reschedules kept.
    outcome = settled(waiting, {1: done, 2: py_pod(2, "Running", [running("task")])})
    assert patch_of(outcome)["phase"] == "Running"
    assert patch_of(outcome)["attempts"] == 2
    assert outcome.state == TaskState(TaskPhase.RUNNING, attempts=2, reschedules=1)


def test_reschedules_use_no_retries() -> None:
    """Attempt 3 of a task with retries=2 fails after two reschedules: its first try, two retries left."""
    error = report(xcomKeys=[], bytes=2, error="ValueError: boom")
    pod = py_pod(3, "Failed", [terminated("task", 1, error, reason="Error")])
    current = running_status(attempts=3).model_copy(update={"reschedules": 2})
    outcome = settled(current, {3: pod}, RETRIED)
    assert outcome.phase == TaskPhase.RETRYING
    assert patch_of(outcome)["nextAttemptAt"] == "2026-01-02T03:10:10Z"  # the first retry's delay
    assert outcome.state == TaskState(
        TaskPhase.RETRYING, attempts=3, next_attempt_at=NOW + timedelta(seconds=10), reschedules=2
    )


def test_a_failure_the_runner_says_is_never_retried_fails_the_task() -> None:
    timeout = report(xcomKeys=[], bytes=2, error="AirflowSensorTimeout: Sensor has timed out", retry=False)
    pod = py_pod(1, "Failed", [terminated("task", 1, timeout, reason="Error")])
    outcome = settled(running_status(), {1: pod}, RETRIED)
    assert outcome.phase == TaskPhase.FAILED
    assert patch_of(outcome)["message"] == "AirflowSensorTimeout: Sensor has timed out"
    assert outcome.events[0].reason == "TaskFailed"


def test_exit_code_5_is_a_reschedule_only_with_the_runners_report() -> None:
    # A command task's own exit code 5 is a failure; so is a runner report without a reschedule time.
    shell = pod_with(
        render("shell"),
        "Failed",
        [terminated("task", 5, reason="Error")],
        init=[terminated("xcom", 0, report(xcomKeys=[], bytes=2, reschedule="2026-01-02T03:11:00Z"))],
    )
    assert settled(running_status(task_id="shell"), {1: shell}, SHELL).phase == TaskPhase.FAILED
    bad = report(xcomKeys=[], bytes=2, reschedule="soon")
    outcome = settled(running_status(), {1: py_pod(1, "Failed", [terminated("task", 5, bad)])})
    assert outcome.phase == TaskPhase.FAILED
    assert patch_of(outcome)["message"].startswith("invalid termination report: reschedule must be an RFC")
    # retry: false in a user's command's own report is not read either.
    own = report(error="nope", retry=False)
    shell = pod_with(
        render("shell"),
        "Failed",
        [terminated("task", 1, own, reason="Error")],
        init=[terminated("xcom", 0, report(xcomKeys=[], bytes=2))],
    )
    assert settled(
        running_status(task_id="shell"), {1: shell}, SHELL.model_copy(update={"retries": 1})
    ).phase == (TaskPhase.RETRYING)


def test_attempt_results_read_the_same_reports_locally() -> None:
    from kdag.attempts import Termination, attempt_result

    poke = report(xcomKeys=["k"], bytes=9, reschedule="2026-01-02T03:11:00Z")
    result = attempt_result(Termination(5, poke))
    assert result == AttemptResult(
        finished=True,
        exit_code=5,
        message="up for reschedule: the next attempt starts at 2026-01-02T03:11:00Z",
        xcom_keys=("k",),
        xcom_bytes=9,
        reschedule_at=datetime(2026, 1, 2, 3, 11, tzinfo=UTC),
    )
    assert not result.succeeded and not result.skipped
    assert attempt_result(Termination(1, report(error="E", retry=False))).retry is False
    assert attempt_result(Termination(1, report(error="E"))).retry is True


# --- XComs of failed attempts (kept, as in Airflow) -------------------------------------------------------


def test_a_failed_attempt_records_the_keys_it_pushed_before_failing() -> None:
    """Airflow keeps what a failed try pushed: downstream tasks (all_done) of a mapped instance read it."""
    failed = report(xcomKeys=["seen"], bytes=12, error="ValueError: boom")
    pod = py_pod(1, "Failed", [terminated("task", 1, failed, reason="Error")])
    outcome = settle(running_status(), {1: pod}, PY, NOW, run_name=RUN.name, map_index=1)
    assert patch_of(outcome) == {
        "phase": "Failed",
        "exitCode": 1,
        "message": "ValueError: boom",
        "xcomKeys": ["seen"],
        "finishTime": "2026-01-02T03:10:00Z",
    }
    assert outcome.state is not None and outcome.state.xcom_keys == {"seen"}
    assert outcome.finished is not None and outcome.finished.xcom_bytes == 12
    # Retrying: the keys stay until the next attempt stores its own (Airflow clears them when it starts).
    retrying = settled(running_status(), {1: pod}, RETRIED)
    assert retrying.phase == TaskPhase.RETRYING
    assert patch_of(retrying)["xcomKeys"] == ["seen"]
    assert retrying.state is not None and retrying.state.xcom_keys == {"seen"}


def test_a_later_failed_attempt_replaces_the_keys_of_an_earlier_one() -> None:
    earlier = running_status(attempts=2).model_copy(update={"xcom_keys": ["seen"]})
    nothing = report(xcomKeys=[], bytes=2, error="ValueError: boom")
    pod = py_pod(2, "Failed", [terminated("task", 1, nothing, reason="Error")])
    outcome = settled(earlier, {2: pod}, RETRIED)
    assert patch_of(outcome)["xcomKeys"] == []
    assert outcome.state is not None and outcome.state.xcom_keys == frozenset()
    # The same keys again: nothing to write for them. A pod gone before it stored anything: none kept.
    same = report(xcomKeys=["seen"], bytes=12, error="ValueError: boom")
    pod = py_pod(2, "Failed", [terminated("task", 1, same, reason="Error")])
    assert "xcomKeys" not in patch_of(settled(earlier, {2: pod}, RETRIED))
    assert patch_of(settled(earlier, {}, RETRIED))["xcomKeys"] == []


def test_a_failed_command_task_records_the_collectors_keys_only() -> None:
    # The user's container may print anything; only the collector's report says what was stored.
    own = report(xcomKeys=["forged"], bytes=2, error="ValueError: boom")
    pod = pod_with(
        render("shell"),
        "Failed",
        [terminated("task", 1, own, reason="Error")],
        init=[terminated("xcom", 0, report(xcomKeys=["partial"], bytes=9))],
    )
    outcome = settled(running_status(task_id="shell"), {1: pod}, SHELL)
    assert outcome.phase == TaskPhase.FAILED
    assert patch_of(outcome)["xcomKeys"] == ["partial"]
    # An XCom failure stored nothing: no keys.
    broken = report(error="XCom 'x' of task 'shell' is not JSON-serialisable: set")
    pod = pod_with(
        render("shell"),
        "Failed",
        [terminated("task", 1, reason="Error")],
        init=[terminated("xcom", 3, broken)],
    )
    assert "xcomKeys" not in patch_of(settled(running_status(task_id="shell"), {1: pod}, SHELL))


# --- sensors: the pods of earlier pokes -------------------------------------------------------------------


def poke_pod(attempt: int) -> dict[str, Any]:
    """The pod of a poke that was not done: exit code 5 and when to poke again."""
    poke = report(xcomKeys=[], bytes=2, reschedule="2026-01-02T03:09:00Z")
    return py_pod(attempt, "Failed", [terminated("task", 5, poke, reason="Error")])


def test_the_last_pokes_pod_is_kept_while_the_sensor_waits() -> None:
    """`kdag logs` reads `podName`: the poke just settled keeps its pod; the one before it goes."""
    current = running_status(attempts=2).model_copy(update={"reschedules": 1})
    outcome = settled(current, {1: poke_pod(1), 2: poke_pod(2)})
    assert outcome.phase == TaskPhase.UP_FOR_RESCHEDULE
    assert outcome.delete_pods == (names.pod_name(RUN.name, "hello_task", 1, run_uid=RUN.uid),)
    first = settled(running_status(), {1: poke_pod(1)})
    assert first.phase == TaskPhase.UP_FOR_RESCHEDULE and first.delete_pods == ()


def test_earlier_pokes_pods_go_once_a_newer_attempt_is_recorded_whatever_it_became() -> None:
    pods = {1: poke_pod(1), 2: poke_pod(2), 3: py_pod(3, "Running", [running("task")])}
    current = running_status(attempts=3).model_copy(update={"reschedules": 2})
    outcome = settled(current, pods)
    assert outcome.patch is None  # nothing to record: the deletions alone
    earlier = tuple(names.pod_name(RUN.name, "hello_task", n, run_uid=RUN.uid) for n in (1, 2))
    assert outcome.delete_pods == earlier
    done = py_pod(3, "Succeeded", [terminated("task", 0, report(xcomKeys=["return_value"], bytes=9))])
    succeeded = settled(current, {**pods, 3: done})
    assert succeeded.phase == TaskPhase.SUCCEEDED
    assert succeeded.delete_pods == outcome.delete_pods
    # Adopted in this pass (a pass made pod 2 and stopped before recording it): pod 1 goes too.
    waiting = status(phase="UpForReschedule", attempts=1, reschedules=1, startTime=STARTED)
    adopted = settled(waiting, {1: poke_pod(1), 2: py_pod(2, "Running", [running("task")])})
    assert adopted.delete_pods == (names.pod_name(RUN.name, "hello_task", 1, run_uid=RUN.uid),)


def test_pods_of_failed_attempts_and_pods_being_deleted_are_left_alone() -> None:
    failed = py_pod(2, "Failed", [terminated("task", 1, report(error="E: x"), reason="Error")])
    going = poke_pod(1)
    going["metadata"]["deletionTimestamp"] = "2026-01-02T03:09:30Z"
    current = running_status(attempts=3).model_copy(update={"reschedules": 1})
    outcome = settled(current, {1: going, 2: failed, 3: py_pod(3, "Running", [running("task")])})
    assert outcome.delete_pods == ()  # a retry's pod is no poke; pod 1 is already on its way
    no_sensor = settled(running_status(attempts=2), {1: failed, 2: py_pod(2, "Running", [running("task")])})
    assert no_sensor.delete_pods == ()
