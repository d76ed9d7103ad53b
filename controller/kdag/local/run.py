"""Run a whole DAG on this machine: every task a process of the runner, as in a task pod (Python tasks'
forked from one that loaded the runner already, where that is the same: `kdag.local.forkserver`).

The scheduling decisions are `kdag.graph.decide`'s (the controller's own), the task environment is
`kdag.render.task_env`'s; only where XComs live differs: a directory per task under the run's work
directory (the same files a ConfigMap volume shows) instead of ConfigMaps.
"""

from __future__ import annotations

import contextlib
import queue
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from kdag_runner import store

from kdag import graph, mapping, render, retries, topology
from kdag.api.models import DAGSpec, ExternalRunsQuery, RunPhase, TaskPhase, TaskSpec, resolve_task
from kdag.external_runs import AIRFLOW_TASK_STATE
from kdag.external_runs import answer as external_runs_answer
from kdag.local import forkserver
from kdag.local.attempt_processes import AttemptDone, attempt_env, run_attempt
from kdag.local.attempt_processes import LocalRunError as LocalRunError  # where it always was
from kdag.questions import EXTERNAL_RUNS_ENV, TRIGGERED_RUN_ENV
from kdag.task_state import TaskState
from kdag.triggers import TriggerRequest

LOCAL_NAMESPACE = "local"
# A local run has no image to pull: Python tasks run with this interpreter, commands on the host.
LOCAL_IMAGE = "local"

AIRFLOW_STATE = AIRFLOW_TASK_STATE  # a task's phase as Airflow names its state
AIRFLOW_RUN_STATE = {RunPhase.SUCCEEDED: "success", RunPhase.FAILED: "failed", RunPhase.RUNNING: "running"}


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
    map_index: int = -1
    """The instance of a mapped task that pushed it; -1 for a task that is not mapped (Airflow's)."""

    def as_json(self) -> dict[str, Any]:
        """The row as its JSON object (`map_index` only on a mapped instance's rows, as Airflow's rows
        read back by bench/airflow_reference.py)."""
        row: dict[str, Any] = {"task_id": self.task_id, "key": self.key, "value": self.value}
        if self.map_index != -1:
            row["map_index"] = self.map_index
        return row


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
    map_index: int | None = None
    """The instance of a mapped task this reports on; None for a task (or a mapped task as a whole)."""
    rendered_map_index: str = ""
    """A mapped instance's name (its map_index_template rendered)."""

    @property
    def key(self) -> str:
        """`task_id`, or `task_id[i]` for instance i of a mapped task (the run's `tasks` in `-o json`)."""
        return self.task_id if self.map_index is None else mapping.instance_key(self.task_id, self.map_index)

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
    logical_date: datetime | None = None

    @property
    def state(self) -> str:
        """`success` or `failed`, as Airflow names a finished run."""
        return AIRFLOW_RUN_STATE[self.phase]

    def as_json(self) -> dict[str, Any]:
        """The one JSON object `kdag run --local -o json` prints: `tasks` each task's state (as `kdag xcom
        -o json`), `task_instances` its attempts, last exit code, message and log file, `logs` the folder."""
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "state": self.state,
            "tasks": {tid: report.state for tid, report in self.tasks.items()},
            "task_instances": {tid: self.instance_json(tid, report) for tid, report in self.tasks.items()},
            "logs": str(self.logs),
            "xcoms": [row.as_json() for row in self.xcoms],
        }

    @property
    def logs(self) -> Path:
        """The folder of the tasks' logs, `{key}.log` each (every attempt, one after the other)."""
        return self.workdir / "logs"

    def instance_json(self, key: str, report: TaskReport) -> dict[str, Any]:
        """One task's (or mapped instance's) attempts, exit code, message and log, if it ran."""
        log = self.logs / f"{key}.log"
        return {
            "state": report.state,
            "attempts": report.attempts,
            "exit_code": report.exit_code,
            "message": report.message,
            "log": str(log) if log.is_file() else None,
        }


@dataclass
class _RunState:
    states: dict[str, TaskState] = field(default_factory=dict)
    """By task id, and by `mapping.instance_key` for an instance of a mapped task."""
    running: set[str] = field(default_factory=set)


class TriggerAnswers(Protocol):
    """What answers a local run's questions about other runs (`kdag.questions`): a TriggerDagRunOperator's
    request, an ExternalTaskSensor's question (`kdag.local.triggers`: the runs this session triggers)."""

    def answer(self, request: TriggerRequest, task: str, try_number: int) -> dict[str, Any]:
        """`KDAG_TRIGGERED_RUN` for the next attempt of `task` (`kdag.triggers.answer`'s shapes)."""
        ...

    def external_runs(self, query: ExternalRunsQuery) -> dict[str, Any]:
        """`KDAG_EXTERNAL_RUNS` for a sensor's next attempt, from the runs as they are now."""
        ...


class _NoTriggers:
    def answer(self, request: TriggerRequest, task: str, try_number: int) -> dict[str, Any]:
        return {"error": f"DAG '{request.dag_id}' not found: this local run looks up no DAG files"}

    def external_runs(self, query: ExternalRunsQuery) -> dict[str, Any]:
        return external_runs_answer(query, None, [])  # no other DAG, no other run


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
    triggers: TriggerAnswers | None = None,
) -> LocalRunResult:
    """Run every task of `dag` to the end, as many at a time as the graph allows.

    `triggers` answers the TriggerDagRunOperators' requests (`kdag.local.triggers.LocalTriggers`: it finds
    the DAG and runs it); without it a request fails its task, saying no DAG can be found.

    Task logs go to `{workdir}/logs/{task_id}.log`, XComs to `{workdir}/xcom/{task_id}/`; instance i of a
    mapped task logs to `{task_id}[i].log` and pushes to `{workdir}/xcom/{task_id}/{i}/` (the layout a
    mapped ancestor's projected volume has in a pod). `on_change` is called (from this thread) each time a
    task, or a mapped task's instance, changes phase.
    """
    from kdag.api.validation import dag_spec_problems  # the webhook's validator
    from kdag.params import describe as describe_params
    from kdag.params import run_param_problems

    problems = dag_spec_problems(dag.spec.to_kube())
    if problems:
        raise LocalRunError(f"DAG '{dag.name}': " + "; ".join(problems))
    refused = run_param_problems(dag.spec, params, conf)  # as the controller checks a run before it starts
    if refused:
        raise LocalRunError(f"DAG '{dag.name}': {describe_params(refused)}")
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
    done: queue.Queue[AttemptDone] = queue.Queue()
    state = _RunState()

    lengths: dict[str, int] = {}  # mapped tasks decided: their instance counts (0: marked as a whole)
    answers: dict[str, tuple[int, dict[str, Any]]] = {}  # task key -> (try, KDAG_TRIGGERED_RUN)
    sensed: dict[str, ExternalRunsQuery] = {}  # task key -> its ExternalTaskSensor's latest question

    def set_phase(tid: str, phase: TaskPhase, **changes: Any) -> None:
        if tid not in reports:  # an instance of a mapped task that expanded
            task_id, index = mapping.split_instance_key(tid)
            reports.pop(task_id, None)
            reports[tid] = TaskReport(task_id, map_index=index)
        report = reports[tid]
        report.phase = phase
        for name, value in changes.items():
            setattr(report, name, value)
        if on_change is not None:
            on_change(report)

    def start(tid: str) -> None:
        attempt = state.states[tid].attempts + 1 if tid in state.states else 1
        # A sensor's reschedules are no tries: carried along to count its retries and its timeout.
        reschedules = state.states[tid].reschedules if tid in state.states else 0
        state.states[tid] = TaskState(TaskPhase.RUNNING, attempts=attempt, reschedules=reschedules)
        state.running.add(tid)
        now = datetime.now(UTC)
        first = reports[tid].started_at if tid in reports and reports[tid].started_at else now
        set_phase(tid, TaskPhase.RUNNING, attempts=attempt, started_at=first)
        task_id, index = mapping.split_instance_key(tid)
        ancestors = topology.ancestors(dag.spec.tasks, task_id)
        mapped = {a: lengths[a] for a in ancestors if a in lengths}
        asked = answers.get(tid)  # what became of the run a TriggerDagRunOperator asked for in this try
        answered = {TRIGGERED_RUN_ENV: asked[1]} if asked and asked[0] == attempt - reschedules else {}
        if tid in sensed:  # a sensor's question, answered from the runs as they are when the attempt starts
            answered[EXTERNAL_RUNS_ENV] = (triggers or _NoTriggers()).external_runs(sensed[tid])
        env = attempt_env(
            run,
            tasks[task_id],
            attempt,
            workdir,
            dag.python_file,
            task_start=first,
            reschedules=reschedules,
            map_index=index,
            mapped=mapped,
            answers=answered,
            ancestor_ids=ancestors,
        )
        thread = threading.Thread(
            target=run_attempt, args=(tasks[task_id], attempt, env, workdir, done, tid, server), daemon=True
        )
        thread.start()

    # Python tasks' runners fork from one that is loaded already (kdag.local.forkserver), when they can.
    server = forkserver.take() if any(task.python is not None for task in tasks.values()) else None
    try:
        while True:
            plain, instances = mapping.split_states(state.states)
            decision = graph.decide(
                dag.spec.tasks, plain, datetime.now(UTC), defaults=dag.spec.defaults, instances=instances
            )
            lengths.update(decision.lengths)
            for tid in decision.upstream_failed:
                state.states[tid] = TaskState(TaskPhase.UPSTREAM_FAILED)
                set_phase(tid, TaskPhase.UPSTREAM_FAILED, **_why(decision, tid))
            for tid in decision.skipped:
                state.states[tid] = TaskState(TaskPhase.SKIPPED)
                by = decision.skipped_by.get(tid)
                set_phase(
                    tid,
                    TaskPhase.SKIPPED,
                    **({"message": f"skipped by task {by!r}"} if by else _why(decision, tid)),
                )
            for tid in decision.failed:  # a mapped task with more instances than its maxLength
                state.states[tid] = TaskState(TaskPhase.FAILED)
                set_phase(tid, TaskPhase.FAILED, **_why(decision, tid))
            # Instances of a mapped task group's tasks marked by their own trigger rule (or a skip request).
            for phase, marked in (
                (TaskPhase.UPSTREAM_FAILED, decision.upstream_failed_instances),
                (TaskPhase.SKIPPED, decision.skipped_instances),
            ):
                for task_id, index in marked:
                    key = mapping.instance_key(task_id, index)
                    state.states[key] = TaskState(phase)
                    by = decision.skipped_by.get(key)
                    set_phase(key, phase, **({"message": f"skipped by task {by!r}"} if by else {}))
            for tid in (*decision.start, *decision.retry):
                start(tid)
            for task_id, index in (*decision.start_instances, *decision.retry_instances):
                start(mapping.instance_key(task_id, index))
            if decision.phase != RunPhase.RUNNING and not state.running:
                break
            timeout = None
            if decision.wake_at is not None:
                timeout = max((decision.wake_at - datetime.now(UTC)).total_seconds(), 0.0)
            if not state.running and timeout is None:
                break  # nothing running and nothing due: decide() would never change its answer
            try:
                ended = [done.get(timeout=timeout)]
            except queue.Empty:
                continue
            # Every attempt that has ended by now, then one decision over all of them (as a pass of the
            # controller sees every pod that ended since the last).
            with contextlib.suppress(queue.Empty):
                while True:
                    ended.append(done.get_nowait())
            for result in ended:
                if result.result.questions.external_runs is not None:
                    sensed[result.task_id] = result.result.questions.external_runs
                request = result.result.questions.trigger
                if request is not None:  # a TriggerDagRunOperator asked: answered before its next attempt
                    prior = state.states.get(result.task_id)
                    try_number = result.attempt - (prior.reschedules if prior is not None else 0)
                    answer = (triggers or _NoTriggers()).answer(request, result.task_id, try_number)
                    answers[result.task_id] = (try_number, answer)
                _record(result, tasks[mapping.split_instance_key(result.task_id)[0]], state, set_phase)
    finally:
        if server is not None:
            server.close()

    # Tasks in topological order, a mapped task's instances in its place in map order.
    order = topology.topological_order(dag.spec.tasks)
    by_task: dict[str, list[tuple[str, TaskReport]]] = {}
    for key, report in sorted(reports.items(), key=lambda item: item[1].map_index or 0):
        by_task.setdefault(report.task_id, []).append((key, report))
    ordered = {key: report for tid in order for key, report in by_task.get(tid, [])}
    return LocalRunResult(
        dag_id=run.dag_id,
        run_id=run.name,
        phase=decision.phase,
        tasks=ordered,
        xcoms=read_xcoms(workdir / "xcom", order, lengths),
        workdir=workdir,
        logical_date=run.logical_date,
    )


def _why(decision: graph.Decision, task_id: str) -> dict[str, Any]:
    """The message of a mapped task marked as a whole (Skipped, UpstreamFailed, Failed), if it was."""
    message = decision.messages.get(task_id)
    return {"message": message} if message else {}


def _record(
    result: AttemptDone,
    task: TaskSpec,
    state: _RunState,
    set_phase: Callable[..., None],
) -> None:
    tid = result.task_id
    state.running.discard(tid)
    common: dict[str, Any] = {"exit_code": result.result.exit_code, "message": result.result.message}
    if result.result.rendered_map_index:
        common["rendered_map_index"] = result.result.rendered_map_index
    # What the attempt stored, whatever its outcome (as settle records it): a mapped task's length over a
    # mapped upstream counts the instances that pushed the key, failed or skipped ones too, as Airflow's.
    keys = frozenset(result.result.xcom_keys)
    if result.result.skipped:
        # Final, as in Airflow: no retry; graph.decide cascades it downstream.
        state.states[tid] = TaskState(TaskPhase.SKIPPED, attempts=result.attempt, xcom_keys=keys)
        set_phase(tid, TaskPhase.SKIPPED, finished_at=result.finished_at, **common)
        return
    if result.result.succeeded:
        # The tasks it asked to skip (a branch's): graph.decide marks those not started yet Skipped.
        skip = frozenset(result.result.skip_tasks)
        state.states[tid] = TaskState(
            TaskPhase.SUCCEEDED,
            attempts=result.attempt,
            skip_tasks=skip,
            xcom_lengths=dict(result.result.xcom_lengths),
            xcom_keys=keys,
        )
        set_phase(tid, TaskPhase.SUCCEEDED, finished_at=result.finished_at, **common)
        return
    prior = state.states.get(tid)
    reschedules = prior.reschedules if prior is not None else 0
    if result.result.reschedule_at is not None:
        # A sensor not done yet: not a try; the next attempt starts at the time it asked for (graph.decide).
        state.states[tid] = TaskState(
            TaskPhase.UP_FOR_RESCHEDULE,
            attempts=result.attempt,
            next_attempt_at=result.result.reschedule_at,
            reschedules=reschedules + 1,
            xcom_keys=keys,
        )
        set_phase(tid, TaskPhase.UP_FOR_RESCHEDULE, **common)
        return
    next_at = (
        retries.next_attempt_at(task, result.attempt, result.finished_at, reschedules=reschedules)
        if result.result.retry
        else None
    )
    if next_at is None:
        state.states[tid] = TaskState(
            TaskPhase.FAILED, result.attempt, reschedules=reschedules, xcom_keys=keys
        )
        set_phase(tid, TaskPhase.FAILED, finished_at=result.finished_at, **common)
    else:
        state.states[tid] = TaskState(
            TaskPhase.RETRYING,
            attempts=result.attempt,
            next_attempt_at=next_at,
            reschedules=reschedules,
            xcom_keys=keys,
        )
        set_phase(tid, TaskPhase.RETRYING, **common)


def read_xcoms(xcom_root: Path, order: list[str], mapped: Mapping[str, int] | None = None) -> list[XComRow]:
    """Every XCom in a run's directory, task by task in topological order, keys as the task pushed them;
    a mapped task's (`mapped`: its instance count) instance by instance, in map order."""
    rows: list[XComRow] = []
    for tid in order:
        if mapped is not None and tid in mapped:
            for index in range(mapped[tid]):
                for key, value in store.read_task_values(xcom_root / tid / str(index)).items():
                    rows.append(XComRow(tid, key, value, index))
            continue
        for key, value in store.read_task_values(xcom_root / tid).items():
            rows.append(XComRow(tid, key, value))
    return rows
