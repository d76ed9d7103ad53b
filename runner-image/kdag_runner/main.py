"""``python -m kdag_runner run|collect``: run one task, or collect a non-Python task's XCom files.

Exit codes: 0 success, 1 the task failed (traceback on stderr, as Airflow logs it), 3 its XComs could
not be stored (the message on stderr and in the termination message), 4 the task skipped itself
(``AirflowSkipException``; the reason in the termination message), 2 a usage error.
Imports are deferred so that starting the runner stays cheap.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdag_runner.authoring import DAG, BaseOperator
    from kdag_runner.environment import TaskEnvironment
    from kdag_runner.sinks import XComSink
    from kdag_runner.xcom import TaskInstance

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
EXIT_XCOM_FAILED = 3
EXIT_SKIPPED = 4
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
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
    import traceback

    from kdag_runner.authoring import AirflowSkipException
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

    code = EXIT_OK
    failure = ""
    _fail_on_sigterm()
    try:
        task, dag = _load_task(env)
        ti.task = task
        ti.max_tries = task.retries
        ti.params = {**(dag.params if dag is not None else {}), **task.params, **env.params}
        context = build_context(env, ti, task, dag)
        set_current_context(context)
        result = task.execute(context)
        task.push_result(ti, result)
    except XComError as err:
        code, failure = EXIT_XCOM_FAILED, str(err)
        print(f"kdag: {failure}", file=sys.stderr)
    except AirflowSkipException as err:
        # As Airflow: the task is skipped, not failed, and keeps the XComs it pushed before.
        code, failure = EXIT_SKIPPED, str(err) or "Task skipped"
        print(f"Skipping task. reason: {failure}", file=sys.stderr)
    except SystemExit as err:
        # Airflow 3 fails a task whose code calls sys.exit, whatever the exit code.
        code, failure = EXIT_TASK_FAILED, f"Task exited with exit code {err.code}"
        print(f"kdag: {failure}", file=sys.stderr)
    except BaseException as err:
        code, failure = EXIT_TASK_FAILED, f"{type(err).__name__}: {err}"
        print("Task failed with exception", file=sys.stderr)
        traceback.print_exc()
    finally:
        set_current_context(None)
    return _store(env, ti, code, failure)


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
    from kdag_runner.authoring import DAG, DagDefinitionError, PythonOperator
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
        return dag.task_dict[env.task_id], dag
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


def _store(env: TaskEnvironment, ti: TaskInstance, code: int, failure: str) -> int:
    """Write the attempt's XComs (an empty store when they cannot be encoded) and the termination message.

    ``failure`` is why the task failed, or with ``EXIT_SKIPPED`` why it skipped itself.
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
    if code in (EXIT_OK, EXIT_SKIPPED) and xcom_error:
        code, failure = EXIT_XCOM_FAILED, xcom_error
    elif xcom_error:
        failure = f"{failure}; {xcom_error}"
    message: dict[str, Any] = {
        "xcomKeys": [k for k in data if k != store.TYPES_KEY and not k.startswith("__")],
        "bytes": store.data_size(data),
    }
    if code == EXIT_SKIPPED:
        message["skipped"] = failure
    elif failure:
        message = {"error": failure} if code == EXIT_XCOM_FAILED else {**message, "error": failure}
    write_termination_message(message)
    return code


def write_termination_message(message: dict[str, Any]) -> None:
    """Write one JSON line where Kubernetes reads the termination message, when that file is there.

    The default path is written only if it exists (the kubelet creates it in a pod), so runs on a
    host never create ``/dev/termination-log``; ``KDAG_TERMINATION_LOG`` names another file.
    """
    import json

    path = os.environ.get("KDAG_TERMINATION_LOG", "")
    if not path:
        path = DEFAULT_TERMINATION_LOG
        if not os.path.exists(path):
            return
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(json.dumps(message, separators=(",", ":")) + "\n")
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
        data = store.encode(read_xcom_files(env), env.task_id)
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
    write_termination_message({"xcomKeys": keys, "bytes": store.data_size(data)})
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
