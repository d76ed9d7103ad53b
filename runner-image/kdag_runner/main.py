"""``python -m kdag_runner run|collect``: run one task, or collect a non-Python task's XCom files.

Exit codes: 0 success, 1 the task failed (traceback on stderr, as Airflow logs it), 3 its XComs could
not be stored (the message on stderr and in the termination message), 4 the task skipped itself
(``AirflowSkipException``; the reason in the termination message), 5 the task is up for reschedule (a sensor
in reschedule mode not done yet, ``AirflowRescheduleException``; the report's ``reschedule`` says when to
run the next attempt), 2 a usage error. A failure that must not be retried (``AirflowFailException``,
``AirflowSensorTimeout``) says ``"retry": false`` in its report.
The operator runs through ``kdag_runner.airflow.operators.run_task`` (templates, pre/post execute,
callbacks); a success that skips tasks downstream (a branch, a short-circuit, ``DownstreamTasksSkipped``)
reports them as ``skipTasks`` (docs/design.md, "Delivery into a task pod").
Imports are deferred so that starting the runner stays cheap.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from kdag_runner.airflow import DAG, BaseOperator
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
USAGE = "usage: python -m kdag_runner run|collect"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["run"]:
        return run_task()
    if args == ["collect"]:
        return collect()
    print(USAGE, file=sys.stderr)
    return EXIT_USAGE


def run_task() -> int:
    """Run the task the environment names and store its XComs, even when it fails or pushes nothing."""
    from kdag_runner.airflow import mapping, operators
    from kdag_runner.airflow.params import resolve_params
    from kdag_runner.context import build_context, set_current_context
    from kdag_runner.environment import RunnerConfigError, TaskEnvironment
    from kdag_runner.store import XComError
    from kdag_runner.xcom import TaskInstance

    try:
        env = TaskEnvironment.from_env()
        ti = TaskInstance.from_environment(env)
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
            # An instance of a mapped task: its own arguments, computed here (airflow/mapping.py).
            task = mapping.unmap(task, context)
            ti.task = context["task"] = task
    except BaseException as err:
        # The task could not be loaded: no operator, so no callbacks.
        _log_failure(err)
        code, failure = _failure(err)
        return _store(env, ti, code, failure)
    set_current_context(context)
    try:
        outcome = operators.run_task(task, context, on_error=_log_failure)
    finally:
        set_current_context(None)
    if env.map_index >= 0:
        try:
            ti.rendered_map_index = mapping.render_map_index(task, context)
        except Exception as err:  # as Airflow: a template error fails a task that succeeded
            if outcome.state == operators.SUCCESS:
                _log_failure(err)
                return _store(env, ti, *_failure(err))
    if outcome.state == operators.SUCCESS:
        return _store(env, ti, EXIT_OK, "", outcome.skip_tasks)
    if outcome.state == operators.SKIPPED:
        # As Airflow: the task is skipped, not failed, and keeps the XComs it pushed before.
        reason = str(outcome.error or "") or "Task skipped"
        print(f"Skipping task. reason: {reason}", file=sys.stderr)
        return _store(env, ti, EXIT_SKIPPED, reason)
    assert outcome.error is not None
    if outcome.state == operators.UP_FOR_RESCHEDULE:
        at = _reschedule_time(outcome.error)
        if at:
            print(f"kdag: rescheduling task: the next attempt starts at {at}", file=sys.stderr)
            return _store(env, ti, EXIT_RESCHEDULE, "", reschedule=at)
        failure = f"AirflowRescheduleException: reschedule_date must be a datetime, got {outcome.error}"
        print(f"kdag: {failure}", file=sys.stderr)
        return _store(env, ti, EXIT_TASK_FAILED, failure)
    code, failure = _failure(outcome.error)
    return _store(env, ti, code, failure, retry=not _never_retried(outcome.error))


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


def _store(
    env: TaskEnvironment,
    ti: TaskInstance,
    code: int,
    failure: str,
    skip_tasks: tuple[str, ...] = (),
    *,
    reschedule: str = "",
    retry: bool = True,
) -> int:
    """Write the attempt's XComs (an empty store when they cannot be encoded) and the termination message.

    ``failure`` is why the task failed, or with ``EXIT_SKIPPED`` why it skipped itself. ``skip_tasks`` (a
    success's) become the report's ``skipTasks``; a report they would make longer than the kubelet keeps
    fails the attempt instead, since a cut report would skip nothing. ``reschedule`` (with
    ``EXIT_RESCHEDULE``) is when the next attempt starts; ``retry=False`` marks a failure never retried.
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
        "xcomKeys": [k for k in data if k != store.TYPES_KEY and not k.startswith("__")],
        "bytes": store.data_size(data),
    }
    if ti.rendered_map_index:
        message["renderedMapIndex"] = ti.rendered_map_index
    if code == EXIT_SKIPPED:
        message["skipped"] = failure
    elif code == EXIT_RESCHEDULE:
        message["reschedule"] = reschedule
    elif failure:
        message = {"error": failure} if code == EXIT_XCOM_FAILED else {**message, "error": failure}
        if code == EXIT_TASK_FAILED and not retry:
            message["retry"] = False
    elif skip_tasks:
        message["skipTasks"] = list(skip_tasks)
        size = len(_report_line(message).encode("utf-8"))
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
        _add_lengths(message, ti.xcom_lengths())
    write_termination_message(message)
    return code


LENGTHS_BUDGET = TERMINATION_MESSAGE_MAX - 256
"""What ``xcomLengths`` may fill of the termination message, leaving room for ``skipTasks`` and the rest."""


def _add_lengths(message: dict[str, Any], lengths: dict[str, int]) -> None:
    """Put ``xcomLengths`` (ConfigMap key -> length of each pushed list or dict) in a success report, as many
    as fit ``LENGTHS_BUDGET`` bytes of the line: ``return_value`` first, then in push order. A mapped task
    over a key whose length was left out is marked upstream-failed by the controller, naming the key."""
    if not lengths:
        return
    ordered = sorted(lengths.items(), key=lambda item: item[0] != "return_value")
    kept: dict[str, int] = {}
    for key, length in ordered:
        kept[key] = length
        if len(_report_line({**message, "xcomLengths": kept}).encode("utf-8")) > LENGTHS_BUDGET:
            del kept[key]
            break
    if kept:
        message["xcomLengths"] = kept


def _report_line(message: dict[str, Any]) -> str:
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
            out.write(_report_line(message))
    except OSError as err:
        print(f"kdag: cannot write the termination message to {path}: {err}", file=sys.stderr)


def collect() -> int:
    """The sidecar of a non-Python task: on SIGTERM (or ``.done``), push the JSON files it left."""
    from kdag_runner import store
    from kdag_runner.environment import RunnerConfigError, TaskEnvironment
    from kdag_runner.sinks import SinkError, sink_from_env

    try:
        env = TaskEnvironment.from_env()
        if env.xcom_dir is None:
            raise RunnerConfigError("KDAG_XCOM_DIR is not set; the collector reads the task's files there")
    except RunnerConfigError as err:
        print(f"kdag: {err}", file=sys.stderr)
        write_termination_message({"error": str(err)})
        return EXIT_XCOM_FAILED
    _wait_for_task(env.xcom_dir / ".done")
    try:
        values = read_xcom_files(env)
        data = store.encode(values, env.task_id)
    except store.XComError as err:
        print(f"kdag: {err}", file=sys.stderr)
        write_termination_message({"error": str(err)})
        try:
            sink_from_env(env).write(store.finish({}, {}, env.task_id))
        except SinkError as sink_err:
            print(f"kdag: {sink_err}", file=sys.stderr)
        return EXIT_XCOM_FAILED
    try:
        sink_from_env(env).write(data)
    except SinkError as err:
        print(f"kdag: {err}", file=sys.stderr)
        write_termination_message({"error": str(err)})
        return EXIT_XCOM_FAILED
    keys = [k for k in data if k != store.TYPES_KEY]
    print(f"kdag: pushed XComs {keys} of task '{env.task_id}'", file=sys.stderr)
    report: dict[str, Any] = {"xcomKeys": keys, "bytes": store.data_size(data)}
    lengths = {store.encode_key(k): len(v) for k, v in values.items() if isinstance(v, list | dict)}
    _add_lengths(report, lengths)
    write_termination_message(report)
    return EXIT_OK


def read_xcom_files(env: TaskEnvironment) -> dict[str, object]:
    """Values of ``{key}.json`` files in KDAG_XCOM_DIR; ``return.json`` is ``return_value``."""
    import json

    from kdag_runner import store

    assert env.xcom_dir is not None
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    try:
        files = sorted(p for p in env.xcom_dir.iterdir() if p.name.endswith(".json") and p.is_file())
    except FileNotFoundError:
        return values
    for file in files:
        stem = file.name[: -len(".json")]
        key = store.RETURN_KEY if stem == "return" else stem
        try:
            store.validate_key(key, env.task_id)
        except store.XComError as err:
            raise store.XComError(f"XCom file '{file.name}': {err}") from None
        if key in sources:
            raise store.XComError(
                f"XCom files '{sources[key]}' and '{file.name}' of task '{env.task_id}' both set '{key}'"
            )
        try:
            values[key] = json.loads(file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise store.XComError(
                f"XCom file '{file.name}' of task '{env.task_id}' is not valid JSON: {err}"
            ) from None
        sources[key] = file.name
    return values


def _wait_for_task(done_file: Any) -> None:
    """Block until SIGTERM or SIGINT arrives, or ``done_file`` appears (local runs)."""
    import signal

    signals = {signal.SIGTERM, signal.SIGINT}
    received: list[int] = []
    # As PID 1 of a container the collector only receives signals it handles. The handler catches one
    # that arrives before the signals are blocked; after that, sigtimedwait takes them.
    for number in signals:
        signal.signal(number, lambda signum, _frame: received.append(signum))
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        while not received and not done_file.exists():
            if signal.sigtimedwait(signals, 0.2) is not None:
                return
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
