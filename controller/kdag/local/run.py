"""Run a whole DAG on this machine: every task a subprocess through the runner, as in a task pod.

The scheduling decisions are `kdag.graph.decide`'s (the controller's own), the task environment is
`kdag.render.task_env`'s; only where XComs live differs: a directory per task under the run's work
directory (the same files a ConfigMap volume shows) instead of ConfigMaps.
"""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kdag_runner import store

from kdag import graph, render
from kdag.api.models import DAGSpec, RunPhase, TaskPhase, TaskSpec, resolve_task
from kdag.attempts import AttemptResult, Termination, attempt_result

LOCAL_NAMESPACE = "local"
RUNNER = (sys.executable, "-m", "kdag_runner")
# A local run has no image to pull: Python tasks run with this interpreter, commands on the host.
LOCAL_IMAGE = "local"
COLLECTOR_STOP_TIMEOUT_SECONDS = 30.0

AIRFLOW_STATE = {
    TaskPhase.SUCCEEDED: "success",
    TaskPhase.FAILED: "failed",
    TaskPhase.UPSTREAM_FAILED: "upstream_failed",
    TaskPhase.SKIPPED: "skipped",
    TaskPhase.RUNNING: "running",
    TaskPhase.RETRYING: "up_for_retry",
    TaskPhase.PENDING: "queued",
}
AIRFLOW_RUN_STATE = {RunPhase.SUCCEEDED: "success", RunPhase.FAILED: "failed", RunPhase.RUNNING: "running"}


class LocalRunError(Exception):
    """The run could not start (a bad source, a task kdag cannot run here); names the task."""


@dataclass(frozen=True)
class LocalDag:
    """A DAG ready to run locally: its spec, its name, and the Python file `fromDagFile` tasks load."""

    name: str
    spec: DAGSpec
    python_file: Path | None = None

    @property
    def dag_id(self) -> str:
        """The DAG id tasks see."""
        return self.spec.dag_id or self.name


@dataclass(frozen=True)
class XComRow:
    """One pushed XCom, as `kdag run --local -o json` and `kdag xcom -o json` print it."""

    task_id: str
    key: str
    value: Any

    def as_json(self) -> dict[str, Any]:
        """The row as its JSON object."""
        return {"task_id": self.task_id, "key": self.key, "value": self.value}


@dataclass
class TaskReport:
    """What happened to one task: its phase, attempts, and why it failed."""

    task_id: str
    phase: TaskPhase | None = None
    attempts: int = 0
    exit_code: int | None = None
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def state(self) -> str:
        """The task's state as Airflow names it (`none` before it was decided)."""
        return AIRFLOW_STATE[self.phase] if self.phase is not None else "none"


@dataclass
class LocalRunResult:
    """The outcome of a local run."""

    dag_id: str
    run_id: str
    phase: RunPhase
    tasks: dict[str, TaskReport]
    xcoms: list[XComRow]
    workdir: Path

    @property
    def state(self) -> str:
        """`success` or `failed`, as Airflow names a finished run."""
        return AIRFLOW_RUN_STATE[self.phase]

    def as_json(self) -> dict[str, Any]:
        """The one JSON object `kdag run --local -o json` prints."""
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "state": self.state,
            "tasks": {tid: report.state for tid, report in self.tasks.items()},
            "xcoms": [row.as_json() for row in self.xcoms],
        }


@dataclass(frozen=True)
class _AttemptDone:
    task_id: str
    attempt: int
    result: AttemptResult
    finished_at: datetime


@dataclass
class _RunState:
    states: dict[str, graph.TaskState] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)


def local_run_id(dag_name: str) -> str:
    """A run id like a CLI-triggered run's, marked local: `{dag}-local-{random5}`."""
    suffix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(5))
    return f"{dag_name}-local-{suffix}"


def run_local(
    dag: LocalDag,
    workdir: Path,
    *,
    params: Mapping[str, Any] | None = None,
    conf: Mapping[str, Any] | None = None,
    logical_date: datetime | None = None,
    run_id: str | None = None,
    on_change: Callable[[TaskReport], None] | None = None,
) -> LocalRunResult:
    """Run every task of `dag` to the end, as many at a time as the graph allows.

    Task logs go to `{workdir}/logs/{task_id}.log`, XComs to `{workdir}/xcom/{task_id}/`.
    `on_change` is called (from this thread) each time a task changes phase.
    """
    from kdag.api.validation import dag_spec_problems  # the webhook's validator

    problems = dag_spec_problems(dag.spec.to_kube())
    if problems:
        raise LocalRunError(f"DAG '{dag.name}': " + "; ".join(problems))
    for task in dag.spec.tasks:
        if task.python is not None and task.python.from_dag_file and dag.python_file is None:
            raise LocalRunError(f"task {task.id!r}: python.fromDagFile needs the DAG's Python file")
    run = render.RunInfo(
        namespace=LOCAL_NAMESPACE,
        dag_name=dag.name,
        name=run_id or local_run_id(dag.name),
        uid=secrets.token_hex(16),
        logical_date=(logical_date or datetime.now(UTC)).astimezone(UTC),
        dag=dag.spec,
        params=dict(params or {}),
        conf=dict(conf or {}),
    )
    for sub in ("xcom", "out", "logs"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    tasks = {task.id: resolve_task(task, dag.spec.defaults, LOCAL_IMAGE) for task in dag.spec.tasks}
    reports = {tid: TaskReport(tid) for tid in tasks}
    done: queue.Queue[_AttemptDone] = queue.Queue()
    state = _RunState()

    def set_phase(tid: str, phase: TaskPhase, **changes: Any) -> None:
        report = reports[tid]
        report.phase = phase
        for name, value in changes.items():
            setattr(report, name, value)
        if on_change is not None:
            on_change(report)

    def start(tid: str) -> None:
        attempt = state.states[tid].attempts + 1 if tid in state.states else 1
        state.states[tid] = graph.TaskState(TaskPhase.RUNNING, attempts=attempt)
        state.running.add(tid)
        now = datetime.now(UTC)
        set_phase(tid, TaskPhase.RUNNING, attempts=attempt, started_at=reports[tid].started_at or now)
        env = _attempt_env(run, dag, tasks[tid], attempt, workdir)
        thread = threading.Thread(
            target=_run_attempt, args=(tasks[tid], attempt, env, workdir, done), daemon=True
        )
        thread.start()

    while True:
        decision = graph.decide(dag.spec.tasks, state.states, datetime.now(UTC))
        for tid in decision.upstream_failed:
            state.states[tid] = graph.TaskState(TaskPhase.UPSTREAM_FAILED)
            set_phase(tid, TaskPhase.UPSTREAM_FAILED)
        for tid in decision.skipped:
            state.states[tid] = graph.TaskState(TaskPhase.SKIPPED)
            set_phase(tid, TaskPhase.SKIPPED)
        for tid in (*decision.start, *decision.retry):
            start(tid)
        if decision.phase != RunPhase.RUNNING and not state.running:
            break
        timeout = None
        if decision.wake_at is not None:
            timeout = max((decision.wake_at - datetime.now(UTC)).total_seconds(), 0.0)
        if not state.running and timeout is None:
            break  # nothing running and nothing due: decide() would never change its answer
        try:
            result = done.get(timeout=timeout)
        except queue.Empty:
            continue
        _record(result, tasks[result.task_id], state, set_phase)

    phases = {tid: report.phase for tid, report in reports.items() if report.phase is not None}
    return LocalRunResult(
        dag_id=run.dag_id,
        run_id=run.name,
        phase=graph.run_phase(dag.spec.tasks, phases),
        tasks=reports,
        xcoms=read_xcoms(workdir / "xcom", graph.topological_order(dag.spec.tasks)),
        workdir=workdir,
    )


def _record(
    result: _AttemptDone,
    task: TaskSpec,
    state: _RunState,
    set_phase: Callable[..., None],
) -> None:
    tid = result.task_id
    state.running.discard(tid)
    common = {"exit_code": result.result.exit_code, "message": result.result.message}
    if result.result.skipped:
        # Final, as in Airflow: no retry; graph.decide cascades it downstream.
        state.states[tid] = graph.TaskState(TaskPhase.SKIPPED, attempts=result.attempt)
        set_phase(tid, TaskPhase.SKIPPED, finished_at=result.finished_at, **common)
        return
    if result.result.succeeded:
        state.states[tid] = graph.TaskState(TaskPhase.SUCCEEDED, attempts=result.attempt)
        set_phase(tid, TaskPhase.SUCCEEDED, finished_at=result.finished_at, **common)
        return
    next_at = graph.next_attempt_at(task, result.attempt, result.finished_at)
    if next_at is None:
        state.states[tid] = graph.TaskState(TaskPhase.FAILED, attempts=result.attempt)
        set_phase(tid, TaskPhase.FAILED, finished_at=result.finished_at, **common)
    else:
        state.states[tid] = graph.TaskState(
            TaskPhase.RETRYING, attempts=result.attempt, next_attempt_at=next_at
        )
        set_phase(tid, TaskPhase.RETRYING, **common)


def _attempt_env(
    run: render.RunInfo, dag: LocalDag, task: TaskSpec, attempt: int, workdir: Path
) -> dict[str, str]:
    """The pod's environment, with the local directories in place of the pod's mounts."""
    # The host's environment (PATH, locale) minus any KDAG_* of its own, which would steer the runner.
    env = {name: value for name, value in os.environ.items() if not name.startswith("KDAG_")}
    for var in render.task_env(run, task, attempt):
        if var["name"] != "HOME":  # the pod's HOME is its /tmp; locally the user's own stays
            env[var["name"]] = var["value"]
    out_dir = workdir / "out" / task.id
    shutil.rmtree(out_dir, ignore_errors=True)  # each attempt's pod gets a fresh emptyDir
    out_dir.mkdir(parents=True)
    env["KDAG_XCOM_IN"] = str(workdir / "xcom")
    env["KDAG_XCOM_DIR"] = str(out_dir)
    env["KDAG_XCOM_SINK"] = f"dir:{workdir / 'xcom' / task.id}"
    env["KDAG_TERMINATION_LOG"] = str(workdir / "logs" / f"{task.id}.termination")
    if "KDAG_DAG_FILE" in env:
        assert dag.python_file is not None  # checked before the run starts
        env["KDAG_DAG_FILE"] = str(dag.python_file)
    for extra in task.env or []:
        if extra.value_from is not None:
            raise LocalRunError(
                f"task {task.id!r}: env {extra.name!r} uses valueFrom, which only a cluster can resolve"
            )
        env[extra.name] = extra.value or ""
    for inp in task.xcom_inputs or []:
        text = store.read_task_dir(workdir / "xcom" / inp.task).get(inp.key)
        if text is not None:  # optional: true on the cluster, so a missing XCom leaves the variable unset
            env[inp.env] = text
    return env


def _run_attempt(
    task: TaskSpec, attempt: int, env: dict[str, str], workdir: Path, done: queue.Queue[_AttemptDone]
) -> None:
    """Run one attempt to the end in this (worker) thread and report it on `done`."""
    log_path = workdir / "logs" / f"{task.id}.log"
    termination = Path(env["KDAG_TERMINATION_LOG"])
    for path in (termination, _task_termination(termination)):
        path.unlink(missing_ok=True)
    try:
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"--- attempt {attempt}\n")
            log.flush()
            if task.python is not None:
                task_exit = _wait(subprocess.Popen([*RUNNER, "run"], env=env, stdout=log, stderr=log), task)
                collector_exit = None
            else:
                task_exit, collector_exit = _run_command_with_collector(task, env, log)
        result = _attempt_result(task_exit, collector_exit, termination, log_path)
    except _TimedOut:
        message = f"timed out after {task.timeout_seconds} s"
        result = AttemptResult(finished=True, exit_code=-int(signal.SIGKILL), message=message)
    except OSError as err:
        message = f"could not start task {task.id!r}: {err}"
        result = AttemptResult(finished=True, exit_code=127, message=message)
    done.put(_AttemptDone(task.id, attempt, result, datetime.now(UTC)))


class _TimedOut(Exception):
    """The attempt ran past the task's timeoutSeconds and was killed."""


def _wait(proc: subprocess.Popen[bytes], task: TaskSpec) -> int:
    """Wait for the attempt's process; past the task's timeout kill it, as activeDeadlineSeconds does."""
    try:
        return proc.wait(timeout=task.timeout_seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise _TimedOut from None


def _run_command_with_collector(task: TaskSpec, env: dict[str, str], log: Any) -> tuple[int, int]:
    """A non-Python task as in its pod: the collector runs beside the command and pushes once it exits.

    Returns the exit codes of the command and of the collector.

    In a pod the kubelet sends the sidecar SIGTERM; here the collector is told through `.done` in the
    XCom directory, which cannot arrive before it is listening, however fast the command is.
    """
    collector = subprocess.Popen([*RUNNER, "collect"], env=env, stdout=log, stderr=log)
    command = [*(task.command or []), *(task.args or [])]
    task_env = {**env, "KDAG_TERMINATION_LOG": str(_task_termination(Path(env["KDAG_TERMINATION_LOG"])))}
    try:
        task_exit = _wait(subprocess.Popen(command, env=task_env, stdout=log, stderr=log), task)
    except OSError as err:  # as a container whose command is missing: exit code 127
        log.write(f"could not start {command[0]!r}: {err}\n")
        task_exit = 127
    finally:
        (Path(env["KDAG_XCOM_DIR"]) / ".done").touch()
    try:
        collector_exit = collector.wait(timeout=COLLECTOR_STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        collector.kill()
        collector_exit = collector.wait()
    return task_exit, collector_exit


def _task_termination(termination: Path) -> Path:
    """Where a command task's own container writes its termination message (beside the collector's)."""
    return termination.with_name(termination.name + ".task")


def _attempt_result(
    task_exit: int, collector_exit: int | None, termination: Path, log_path: Path
) -> AttemptResult:
    """The attempt's result from its termination files, read as the cluster reads a pod's.

    `collector_exit` is None for a Python task (the runner pushed and reported itself); for a command task
    `termination` is the collector's report and the command's own is beside it. A failure without a
    report takes the log's last line, where a pod's FallbackToLogsOnError would take its log tail.
    """
    failed = task_exit != 0 or collector_exit not in (None, 0)
    fallback = _last_log_line(log_path) if failed else ""
    if collector_exit is None:
        return attempt_result(Termination(task_exit, _read(termination)), fallback=fallback)
    return attempt_result(
        Termination(task_exit, _read(_task_termination(termination))),
        Termination(collector_exit, _read(termination)),
        fallback=fallback,
    )


def _read(path: Path) -> str:
    """A termination file's text; empty when the container left none."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _last_log_line(log_path: Path) -> str:
    """The last non-blank line of the task's log."""
    lines = [
        line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()
    ]
    return lines[-1] if lines else ""


def read_xcoms(xcom_root: Path, order: list[str]) -> list[XComRow]:
    """Every XCom in a run's directory, task by task in topological order, keys as the task pushed them."""
    rows: list[XComRow] = []
    for tid in order:
        for key, value in store.read_task_values(xcom_root / tid).items():
            rows.append(XComRow(tid, key, value))
    return rows
