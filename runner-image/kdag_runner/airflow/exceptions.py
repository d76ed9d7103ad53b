"""The exceptions of DAG files and tasks: Airflow's, and kdag's ``DagDefinitionError``."""

from __future__ import annotations


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


def never_retried(err: BaseException) -> bool:
    """Whether a failure ends the task at once, retries left or not, as in Airflow.

    An ``AirflowFailException`` or a sensor's ``AirflowSensorTimeout``; the runner reports ``"retry": false``.
    """
    return isinstance(err, AirflowFailException | AirflowSensorTimeout)
