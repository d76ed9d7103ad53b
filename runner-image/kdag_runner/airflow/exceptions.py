"""The exceptions of DAG files and tasks: Airflow's, and kdag's ``DagDefinitionError``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class DagDefinitionError(Exception):
    """A DAG file that cannot define a valid DAG; the message names the task or DAG."""


class AirflowException(Exception):
    """Airflow's base exception, raised by operators here too (a failed bash command)."""


class AirflowSkipException(AirflowException):
    """Raised to skip a task: the attempt ends Skipped (runner exit code 4) and is not retried."""


class AirflowFailException(AirflowException):
    """Raised to fail a task without retrying, whatever its retries (see `never_retried`)."""


class ParamValidationError(AirflowException):
    """A param without a value, or a value that is not JSON (Airflow's); kdag checks schemas before a
    task starts (``kdag.params``)."""


class DownstreamTasksSkipped(AirflowException):
    """Raised by an operator to skip tasks downstream of it (Airflow 3's ``SkipMixin``): the task succeeds
    and the runner's report asks the controller to mark ``tasks`` Skipped (``skipTasks``)."""

    def __init__(self, *, tasks: object) -> None:
        super().__init__()
        self.tasks = tasks


class AirflowSensorTimeout(AirflowException):
    """A sensor waited longer than its ``timeout``: the task fails and, as in Airflow, is not retried (the
    runner's failure report says ``"retry": false``)."""


class AirflowRescheduleException(AirflowException):
    """Raised to poke again later (a sensor in ``mode="reschedule"``): the attempt ends up for reschedule
    (runner exit code 5, report ``{"reschedule": time}``) and the controller starts the next one at
    ``reschedule_date``; it is not a failure and uses no retry."""

    def __init__(self, reschedule_date: object) -> None:
        super().__init__()
        self.reschedule_date = reschedule_date


class RunQuestion(AirflowRescheduleException):
    """A question about other runs, asked of whoever runs the task: a task pod may neither read nor create
    DAGRuns (docs/design.md, "Questions about other runs"). The attempt ends up for reschedule (at once,
    unless ``reschedule_date`` says later) with ``body`` under ``report_key`` in its report, and the next
    attempt finds the answer in its environment. Kinds: ``trigger_dagrun.DagRunTriggerRequest``,
    ``external_task.ExternalRunsQuestion``."""

    report_key = ""
    """The key of the runner's report that carries the question."""

    def __init__(self, body: dict[str, Any], reschedule_date: object = None) -> None:
        super().__init__(datetime.now(UTC) if reschedule_date is None else reschedule_date)
        self.body = body

    def describe(self) -> str:
        """What the runner prints when it asks (after ``kdag: ``)."""
        return f"asking about other runs: {self.report_key}"

    def too_long(self, size: int, limit: int) -> str:
        """Why the attempt fails when its report with the question would not fit the termination message."""
        return f"the question {self.report_key} takes {size} bytes of the {limit}-byte termination message"


def never_retried(err: BaseException) -> bool:
    """Whether a failure ends the task at once, retries left or not, as in Airflow.

    An ``AirflowFailException`` or a sensor's ``AirflowSensorTimeout``; the runner reports ``"retry": false``.
    """
    return isinstance(err, AirflowFailException | AirflowSensorTimeout)
