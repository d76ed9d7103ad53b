"""How a task runs (``run_task``) and how it ended (``TaskOutcome``), as Airflow 3's task runner
(``airflow.sdk.execution_time.task_runner``: ``_prepare``, ``_execute_task``, ``_run_task_and_map_outcome``,
``finalize``) does it.

The ``template_fields`` are rendered once, in place (``template_ext`` files read first); then the
``pre_execute=`` hook, an overridden ``pre_execute``, ``on_execute_callback``, ``execute``, the
``post_execute=`` hook (context and result), an overridden ``post_execute`` (context only, as Airflow 3 calls
it); then the result is pushed (``return_value``, and each key with ``multiple_outputs``).
``DownstreamTasksSkipped`` (raised by ``SkipMixin``) ends the task successfully without pushing the result;
``AirflowSkipException`` skips it; anything else fails it. Then one callback list runs with the context:
``on_success_callback``, ``on_skipped_callback``, ``on_retry_callback`` (a retry remains:
``ti.try_number <= ti.max_tries``) or ``on_failure_callback``, with ``context["exception"]`` set on a
failure; a failing callback is logged, never fails the task.

This module sits above ``operators.py``; ``main.py`` runs every task through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kdag_runner.airflow.exceptions import (
    AirflowRescheduleException,
    AirflowSkipException,
    DownstreamTasksSkipped,
    never_retried,
)
from kdag_runner.airflow.operators import BaseOperator


@dataclass(frozen=True)
class TaskOutcome:
    """How ``run_task`` ended: ``state`` is Airflow's (``success``, ``skipped``, ``up_for_retry``,
    ``failed``, ``up_for_reschedule`` with the ``AirflowRescheduleException``); ``skip_tasks`` the tasks a
    successful task asked to skip (``DownstreamTasksSkipped``)."""

    state: str
    error: BaseException | None = None
    skip_tasks: tuple[str, ...] = ()


SUCCESS = "success"
SKIPPED = "skipped"
UP_FOR_RETRY = "up_for_retry"
FAILED = "failed"
UP_FOR_RESCHEDULE = "up_for_reschedule"


def run_task(
    task: BaseOperator,
    context: dict[str, Any],
    on_error: Callable[[BaseException], None] | None = None,
) -> TaskOutcome:
    """Run ``task`` as Airflow's task runner does (see the module docstring) and return how it ended.

    ``on_error`` is told of a failure before the failure callbacks run (so logs read in Airflow's order).
    """
    ti = context["ti"]
    outcome: TaskOutcome
    try:
        task.resolve_template_files()
        task.render_template_fields(context)
        if task._pre_execute_hook is not None:
            task._pre_execute_hook(context)
        if _overrides(task, "pre_execute"):
            task.pre_execute(context)
        task.run_callbacks("on_execute_callback", context)
        result = task.execute(context)
        if task._post_execute_hook is not None:
            task._post_execute_hook(context, result)
        if _overrides(task, "post_execute"):
            task.post_execute(context)
        task.push_result(ti, result)
        outcome = TaskOutcome(SUCCESS)
    except DownstreamTasksSkipped as skip:
        outcome = TaskOutcome(SUCCESS, skip_tasks=skipped_task_ids(skip.tasks))
    except AirflowSkipException as err:
        outcome = TaskOutcome(SKIPPED, error=err)
    except AirflowRescheduleException as err:
        # A sensor not done yet (sensors.py): no callbacks run, as in Airflow's task runner.
        return TaskOutcome(UP_FOR_RESCHEDULE, error=err)
    except BaseException as err:
        if on_error is not None:
            on_error(err)
        # A fail exception or a sensor's timeout fails the task without a retry, as in Airflow.
        retry = not never_retried(err) and getattr(ti, "try_number", 1) <= getattr(ti, "max_tries", 0)
        outcome = TaskOutcome(UP_FOR_RETRY if retry else FAILED, error=err)
        context["exception"] = err
    kind = {
        SUCCESS: "on_success_callback",
        SKIPPED: "on_skipped_callback",
        UP_FOR_RETRY: "on_retry_callback",
        FAILED: "on_failure_callback",
    }[outcome.state]
    task.run_callbacks(kind, context)
    return outcome


def skipped_task_ids(tasks: object) -> tuple[str, ...]:
    """The task ids of ``DownstreamTasksSkipped.tasks``: ids, or (id, map_index) pairs, in order."""
    items = tasks if isinstance(tasks, list | tuple) else [tasks]
    ids = (item[0] if isinstance(item, tuple) and item else item for item in items)
    return tuple(dict.fromkeys(str(i) for i in ids))


def _overrides(task: BaseOperator, method: str) -> bool:
    return getattr(type(task), method, None) is not getattr(BaseOperator, method)
