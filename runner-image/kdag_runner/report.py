"""What an attempt tells the controller: its exit code, and its report in the termination message.

Exit codes: 0 success, 1 the task failed (traceback on stderr, as Airflow logs it), 3 its XComs could
not be stored (the message on stderr and in the termination message), 4 the task skipped itself
(``AirflowSkipException``; the reason in the termination message), 5 the task is up for reschedule (a sensor
in reschedule mode not done yet, ``AirflowRescheduleException``; the report's ``reschedule`` says when to
run the next attempt, and a question about other runs rides along: a TriggerDagRunOperator's
``triggerDagRun``, an ExternalTaskSensor's ``externalRuns``), 2 a usage error. A failure that must not
be retried (``AirflowFailException``, ``AirflowSensorTimeout``) says ``"retry": false`` in its report.
The report is one JSON line of at most ``TERMINATION_MESSAGE_MAX`` bytes; a success that skips tasks
downstream reports them as ``skipTasks`` (docs/design.md, "Delivery into a task pod").
Imports are deferred so that starting the runner stays cheap.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdag_runner.airflow.exceptions import RunQuestion
    from kdag_runner.environment import TaskEnvironment
    from kdag_runner.sinks import XComSink
    from kdag_runner.xcom import TaskInstance

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
EXIT_XCOM_FAILED = 3
EXIT_SKIPPED = 4
EXIT_RESCHEDULE = 5
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
TERMINATION_MESSAGE_MAX = 4096  # the kubelet keeps this many bytes of a termination message


def finish_attempt(
    env: TaskEnvironment,
    ti: TaskInstance,
    code: int,
    failure: str,
    skip_tasks: tuple[str, ...] = (),
    *,
    reschedule: str = "",
    retry: bool = True,
    question: RunQuestion | None = None,
) -> int:
    """Write the attempt's XComs (an empty store when they cannot be encoded) and the termination message.

    ``failure`` is why the task failed, or with ``EXIT_SKIPPED`` why it skipped itself. ``skip_tasks`` (a
    success's) become the report's ``skipTasks``; a report they would make longer than the kubelet keeps
    fails the attempt instead, since a cut report would skip nothing. ``reschedule`` (with
    ``EXIT_RESCHEDULE``) is when the next attempt starts, and ``question`` a question about other runs it
    carries (under the question's ``report_key``; one too long for the termination message fails the attempt);
    ``retry=False`` marks a failure never retried.
    """
    from kdag_runner import store
    from kdag_runner.sinks import SinkError, sink_from_env

    xcom_error = ""
    try:
        data = ti.store_data()
    except store.XComError as err:
        xcom_error = str(err)
        data = store.finish({}, {}, env.task_id)
    try:
        sink: XComSink = sink_from_env(env)
        sink.write(data)
    except SinkError as err:
        xcom_error = f"{xcom_error}; {err}" if xcom_error else str(err)
    if xcom_error:
        print(f"kdag: {xcom_error}", file=sys.stderr)
    if code in (EXIT_OK, EXIT_SKIPPED, EXIT_RESCHEDULE) and xcom_error:
        code, failure = EXIT_XCOM_FAILED, xcom_error
    elif xcom_error:
        failure = f"{failure}; {xcom_error}"
    message: dict[str, Any] = {
        "xcomKeys": store.stored_keys(data),
        "bytes": store.data_size(data),
    }
    if ti.rendered_map_index:
        message["renderedMapIndex"] = ti.rendered_map_index
    if code == EXIT_SKIPPED:
        message["skipped"] = failure
    elif code == EXIT_RESCHEDULE:
        message["reschedule"] = reschedule
        if question is not None:
            message[question.report_key] = question.body
            size = len(report_line(message).encode("utf-8"))
            if size > TERMINATION_MESSAGE_MAX:
                code = EXIT_TASK_FAILED
                failure = question.too_long(size, TERMINATION_MESSAGE_MAX)
                print(f"kdag: {failure}", file=sys.stderr)
                message = {k: v for k, v in message.items() if k not in ("reschedule", question.report_key)}
                message["error"] = failure
    elif failure:
        message = {"error": failure} if code == EXIT_XCOM_FAILED else {**message, "error": failure}
        if code == EXIT_TASK_FAILED and not retry:
            message["retry"] = False
    elif skip_tasks:
        message["skipTasks"] = list(skip_tasks)
        size = len(report_line(message).encode("utf-8"))
        if size > TERMINATION_MESSAGE_MAX:
            failure = (
                f"the {len(skip_tasks)} tasks to skip do not fit the {TERMINATION_MESSAGE_MAX}-byte"
                f" termination message ({size} bytes): skip fewer tasks (e.g. ShortCircuitOperator"
                " with ignore_downstream_trigger_rules=False skips only its direct downstream tasks)"
            )
            print(f"kdag: {failure}", file=sys.stderr)
            code = EXIT_TASK_FAILED
            message = {k: v for k, v in message.items() if k != "skipTasks"} | {"error": failure}
        else:
            print(f"kdag: skipping tasks {list(skip_tasks)}", file=sys.stderr)
    if code == EXIT_OK and "error" not in message:
        add_lengths(message, ti.xcom_lengths())
    write_termination_message(message)
    return code


LENGTHS_BUDGET = TERMINATION_MESSAGE_MAX - 256
"""What ``xcomLengths`` may fill of the termination message, leaving room for ``skipTasks`` and the rest."""


def add_lengths(message: dict[str, Any], lengths: dict[str, int]) -> None:
    """Put ``xcomLengths`` (ConfigMap key -> length of each pushed list or dict) in a success report, as many
    as fit ``LENGTHS_BUDGET`` bytes of the line: ``return_value`` first, then in push order. A mapped task
    over a key whose length was left out is marked upstream-failed by the controller, naming the key."""
    if not lengths:
        return
    ordered = sorted(lengths.items(), key=lambda item: item[0] != "return_value")
    kept: dict[str, int] = {}
    for key, length in ordered:
        kept[key] = length
        if len(report_line({**message, "xcomLengths": kept}).encode("utf-8")) > LENGTHS_BUDGET:
            del kept[key]
            break
    if kept:
        message["xcomLengths"] = kept


def report_line(message: dict[str, Any]) -> str:
    import json

    return json.dumps(message, separators=(",", ":")) + "\n"


def write_termination_message(message: dict[str, Any]) -> None:
    """Write one JSON line where Kubernetes reads the termination message, when that file is there.

    The default path is written only if it exists (the kubelet creates it in a pod), so runs on a
    host never create ``/dev/termination-log``; ``KDAG_TERMINATION_LOG`` names another file.
    """
    path = os.environ.get("KDAG_TERMINATION_LOG", "")
    if not path:
        path = DEFAULT_TERMINATION_LOG
        if not os.path.exists(path):
            return
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(report_line(message))
    except OSError as err:
        print(f"kdag: cannot write the termination message to {path}: {err}", file=sys.stderr)
