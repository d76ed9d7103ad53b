"""``python -m kdag_runner run|collect|check-inputs``: run one task, collect a non-Python task's XCom files
(``collector.py``), or check a command task's ``xcomInputs`` before its command starts (``xcom_inputs.py``).

The exit code and the termination message each command ends with are ``report.py``'s. The operator runs
through ``kdag_runner.airflow.task_runner.run_task`` (templates, pre/post execute, callbacks); a success that
skips tasks downstream (a branch, a short-circuit, ``DownstreamTasksSkipped``) reports them as ``skipTasks``;
an ``AirflowRescheduleException`` becomes a reschedule, carrying a question about other runs when it is a
``RunQuestion`` (docs/design.md, "Delivery into a task pod").
Imports are deferred so that starting the runner stays cheap.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, cast

from kdag_runner.report import (
    EXIT_OK,
    EXIT_RESCHEDULE,
    EXIT_SKIPPED,
    EXIT_TASK_FAILED,
    EXIT_USAGE,
    EXIT_XCOM_FAILED,
    finish_attempt,
    write_termination_message,
)

if TYPE_CHECKING:
    from kdag_runner.airflow import DAG, BaseOperator
    from kdag_runner.environment import TaskEnvironment

USAGE = "usage: python -m kdag_runner run|collect|check-inputs"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["run"]:
        return run_task()
    if args == ["collect"]:
        from kdag_runner.collector import collect

        return collect()
    if args == ["check-inputs"]:
        return check_inputs()
    print(USAGE, file=sys.stderr)
    return EXIT_USAGE


def run_task() -> int:
    """Run the task the environment names and store its XComs, even when it fails or pushes nothing."""
    from kdag_runner import xcom_inputs
    from kdag_runner.airflow import mapped_operator, task_runner
    from kdag_runner.airflow.exceptions import RunQuestion
    from kdag_runner.airflow.params import resolve_params
    from kdag_runner.context import build_context, set_current_context
    from kdag_runner.environment import RunnerConfigError, TaskEnvironment
    from kdag_runner.store import XComError
    from kdag_runner.xcom import TaskInstance

    try:
        env = TaskEnvironment.from_env()
        ti = TaskInstance.from_environment(env)
        # Before the DAG file loads, as the kubelet would have set them; of any size (no exec).
        xcom_inputs.export(env.task_id, env.xcom_inputs, env.xcom_in, os.environ)
    except (RunnerConfigError, XComError) as err:
        print(f"kdag: {err}", file=sys.stderr)
        write_termination_message({"error": str(err)})
        return EXIT_TASK_FAILED

    _fail_on_sigterm()
    try:
        task, dag = _load_task(env)
        ti.task = task
        ti.max_tries = task.retries
        # KDAG_PARAMS is the merged, checked params (DAG < task < conf < run); the file's own defaults
        # only fill in what it lacks (a hand-made environment).
        defaults = {**resolve_params(dag.params if dag else None), **resolve_params(task.params)}
        ti.params = {**defaults, **env.params}
        context = build_context(env, ti, task, dag)
        if env.map_index >= 0:
            # An instance of a mapped task: its own arguments, computed here (airflow/mapped_operator.py).
            task = mapped_operator.unmap(task, context)
            ti.task = context["task"] = task
    except BaseException as err:
        # The task could not be loaded: no operator, so no callbacks.
        _log_failure(err)
        code, failure = _failure(err)
        return finish_attempt(env, ti, code, failure)
    set_current_context(context)
    try:
        outcome = task_runner.run_task(task, context, on_error=_log_failure)
    finally:
        set_current_context(None)
    if env.map_index >= 0:
        try:
            ti.rendered_map_index = mapped_operator.render_map_index(task, context)
        except Exception as err:  # as Airflow: a template error fails a task that succeeded
            if outcome.state == task_runner.SUCCESS:
                _log_failure(err)
                return finish_attempt(env, ti, *_failure(err))
    if outcome.state == task_runner.SUCCESS:
        return finish_attempt(env, ti, EXIT_OK, "", outcome.skip_tasks)
    if outcome.state == task_runner.SKIPPED:
        # As Airflow: the task is skipped, not failed, and keeps the XComs it pushed before.
        reason = str(outcome.error or "") or "Task skipped"
        print(f"Skipping task. reason: {reason}", file=sys.stderr)
        return finish_attempt(env, ti, EXIT_SKIPPED, reason)
    assert outcome.error is not None
    if outcome.state == task_runner.UP_FOR_RESCHEDULE:
        at = _reschedule_time(outcome.error)
        if at:
            # A question about other runs rides on the reschedule (airflow/exceptions.py, RunQuestion).
            question = outcome.error if isinstance(outcome.error, RunQuestion) else None
            if question is None:
                print(f"kdag: rescheduling task: the next attempt starts at {at}", file=sys.stderr)
            else:
                print(f"kdag: {question.describe()}", file=sys.stderr)
            return finish_attempt(env, ti, EXIT_RESCHEDULE, "", reschedule=at, question=question)
        failure = f"AirflowRescheduleException: reschedule_date must be a datetime, got {outcome.error}"
        print(f"kdag: {failure}", file=sys.stderr)
        return finish_attempt(env, ti, EXIT_TASK_FAILED, failure)
    code, failure = _failure(outcome.error)
    return finish_attempt(env, ti, code, failure, retry=not _never_retried(outcome.error))


def _reschedule_time(err: BaseException) -> str:
    """The time an ``AirflowRescheduleException`` asks for, in RFC 3339 UTC, whole seconds rounded up (the
    next attempt never starts before it); "" when it holds no datetime. A naive time is UTC."""
    from datetime import UTC, datetime, timedelta

    at = getattr(err, "reschedule_date", None)
    if not isinstance(at, datetime):
        return ""
    at = (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC)
    if at.microsecond:
        at = at.replace(microsecond=0) + timedelta(seconds=1)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _never_retried(err: BaseException) -> bool:
    """A failure Airflow does not retry whatever the task's retries (`exceptions.never_retried`)."""
    from kdag_runner.airflow.exceptions import never_retried

    return never_retried(err)


def _failure(err: BaseException) -> tuple[int, str]:
    """The exit code and termination message of a task that raised ``err``."""
    from kdag_runner.airflow import AirflowSkipException
    from kdag_runner.store import XComError

    if isinstance(err, XComError):
        return EXIT_XCOM_FAILED, str(err)
    if isinstance(err, AirflowSkipException):
        return EXIT_SKIPPED, str(err) or "Task skipped"
    if isinstance(err, SystemExit):
        # Airflow 3 fails a task whose code calls sys.exit, whatever the exit code.
        return EXIT_TASK_FAILED, f"Task exited with exit code {err.code}"
    return EXIT_TASK_FAILED, f"{type(err).__name__}: {err}"


def _log_failure(err: BaseException) -> None:
    """What the task's log says when it fails (before its failure callbacks run, as in Airflow)."""
    import traceback

    from kdag_runner.airflow import AirflowSkipException
    from kdag_runner.store import XComError

    failure = _failure(err)[1]
    if isinstance(err, AirflowSkipException):
        print(f"Skipping task. reason: {failure}", file=sys.stderr)
    elif isinstance(err, XComError | SystemExit):
        print(f"kdag: {failure}", file=sys.stderr)
    else:
        print("Task failed with exception", file=sys.stderr)
        traceback.print_exception(err)


class TaskTerminated(Exception):
    """The pod is being deleted or timed out: Kubernetes sent SIGTERM."""


def _fail_on_sigterm() -> None:
    """Turn SIGTERM into a task failure, as Airflow does.

    As PID 1 of a container the runner would otherwise ignore SIGTERM, and a deleted pod would wait out
    its whole grace period; raising lets the attempt store what it pushed and end at once.
    """
    import signal

    def _terminate(signum: int, _frame: object) -> None:
        raise TaskTerminated(f"Task received signal {signal.Signals(signum).name}; terminating")

    signal.signal(signal.SIGTERM, _terminate)


def _load_task(env: TaskEnvironment) -> tuple[BaseOperator, DAG | None]:
    """The operator to run: one the DAG file defines, or a PythonOperator around inline source."""
    from kdag_runner.airflow import DAG, DagDefinitionError, PythonOperator
    from kdag_runner.compat import install, load_dags

    dag_file = os.environ.get("KDAG_DAG_FILE", "")
    if dag_file:
        dags = load_dags(dag_file)
        if env.dag_id in dags:
            dag = dags[env.dag_id]
        elif len(dags) == 1:
            dag = next(iter(dags.values()))
        else:
            defined = ", ".join(dags) or "none"
            raise DagDefinitionError(
                f"DAG file '{dag_file}': defines no DAG '{env.dag_id}' (it defines: {defined})"
            )
        if env.task_id not in dag.task_dict:
            raise DagDefinitionError(f"task '{env.task_id}': not in DAG '{dag.dag_id}' of '{dag_file}'")
        # A DAG holds its tasks as DagTask (kdag_runner.airflow.dags); every one is an operator.
        return cast("BaseOperator", dag.task_dict[env.task_id]), dag
    source = os.environ.get("KDAG_PYTHON_SOURCE", "")
    name = os.environ.get("KDAG_PYTHON_CALLABLE", "")
    if not source or not name:
        raise DagDefinitionError(
            f"task '{env.task_id}': set KDAG_DAG_FILE, or KDAG_PYTHON_SOURCE and KDAG_PYTHON_CALLABLE"
        )
    import linecache

    install()
    filename = f"<task {env.task_id} source>"
    # Registered so tracebacks show the lines of inline source, as they do for files.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, Any] = {"__name__": "kdag_task_source"}
    exec(compile(source, filename, "exec"), namespace)
    function = namespace.get(name)
    if function is None:
        raise DagDefinitionError(f"task '{env.task_id}': the source defines no callable '{name}'")
    dag = DAG(env.dag_id)
    return PythonOperator(task_id=env.task_id, python_callable=function, dag=dag), dag


def check_inputs() -> int:
    """A command task's ``xcom-inputs`` init container: fail the attempt, never retried, when an xcomInput
    is too large for the command to start with (``xcom_inputs.problem``)."""
    from kdag_runner import store, xcom_inputs
    from kdag_runner.environment import RunnerConfigError, TaskEnvironment

    try:
        env = TaskEnvironment.from_env()
        values = xcom_inputs.read(env.xcom_inputs, env.xcom_in)
        problem = xcom_inputs.problem(env.task_id, env.xcom_inputs, values)
    except (RunnerConfigError, store.XComError) as err:
        problem = str(err)
    if not problem:
        return EXIT_OK
    print(f"kdag: {problem}", file=sys.stderr)
    write_termination_message({"error": problem, "retry": False})
    return EXIT_XCOM_FAILED
