"""The DAG as a graph, and every scheduling decision a handler makes, as pure functions of data.

`decide(tasks, states, now)` is the one call a DAGRun handler needs: which tasks to start, which to mark
UpstreamFailed or Skipped, which retries are due, the run's phase, and when to look again.
Trigger rules and the run's phase follow Airflow's meaning (TriggerRuleDep, DagRun.update_state).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kdag.api.models import (
    DEFAULT_MAX_RETRY_DELAY_SECONDS,
    DEFAULT_RETRY_DELAY_SECONDS,
    RunPhase,
    TaskPhase,
    TaskSpec,
    TriggerRule,
)


class GraphError(ValueError):
    """Tasks that do not form a graph (`topological_order`); `kdag.api.validation` refuses such DAGs first."""


@dataclass(frozen=True)
class TaskState:
    """What the controller knows of one task of a run (from its TaskRun status)."""

    phase: TaskPhase
    attempts: int = 0
    next_attempt_at: datetime | None = None
    """When a Retrying task's next attempt is due."""


@dataclass(frozen=True)
class Decision:
    """Everything to do for a run now; empty tuples when nothing changes."""

    start: tuple[str, ...] = ()
    """Tasks with no TaskRun yet whose trigger rule holds: create the TaskRun and attempt 1."""
    upstream_failed: tuple[str, ...] = ()
    """Tasks with no TaskRun yet that can never run because upstream tasks failed."""
    skipped: tuple[str, ...] = ()
    """Tasks with no TaskRun yet skipped by their trigger rule."""
    retry: tuple[str, ...] = ()
    """Retrying tasks whose next attempt is due now."""
    phase: RunPhase = RunPhase.RUNNING
    finished: int = 0
    """Tasks finished (Succeeded, Failed, UpstreamFailed, Skipped), counting this decision's marks."""
    total: int = 0
    wake_at: datetime | None = None
    """Earliest future time something becomes due (a retry): look again then."""
    phases: dict[str, TaskPhase] = field(default_factory=dict)
    """Phase of every task that has one, this decision's marks included (DAGRun status.tasks)."""

    @property
    def progress(self) -> str:
        """`N/M`: finished tasks of all tasks (DAGRun status.progress)."""
        return f"{self.finished}/{self.total}"


def _upstream_map(tasks: Sequence[TaskSpec]) -> dict[str, list[str]]:
    return {task.id: task.upstream_ids for task in tasks}


def find_cycle(tasks: Sequence[TaskSpec]) -> list[str] | None:
    """One cycle as `[a, b, c, a]` (each task lists the previous one upstream), or None."""
    upstream = _upstream_map(tasks)
    downstream: dict[str, list[str]] = {task.id: [] for task in tasks}
    for task in tasks:
        for up in task.upstream_ids:
            if up in downstream:
                downstream[up].append(task.id)
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(upstream, white)
    for root in upstream:
        if color[root] != white:
            continue
        path: list[str] = [root]
        iterators = [iter(downstream[root])]
        color[root] = grey
        while iterators:
            child = next(iterators[-1], None)
            if child is None:
                color[path.pop()] = black
                iterators.pop()
            elif color[child] == grey:
                return [*path[path.index(child) :], child]
            elif color[child] == white:
                color[child] = grey
                path.append(child)
                iterators.append(iter(downstream[child]))
    return None


def topological_order(tasks: Sequence[TaskSpec]) -> list[str]:
    """Task ids, every task after its upstream tasks; ties keep the order of the spec."""
    position = {task.id: i for i, task in enumerate(tasks)}
    upstream = _upstream_map(tasks)
    missing: dict[str, int] = {tid: len(set(ups)) for tid, ups in upstream.items()}
    downstream: dict[str, list[str]] = {tid: [] for tid in upstream}
    for tid, ups in upstream.items():
        for up in set(ups):
            if up not in downstream:
                raise GraphError(f"task {tid!r}: upstream {up!r} is not a task of this DAG")
            downstream[up].append(tid)
    ready = [(position[tid], tid) for tid, n in missing.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, tid = heapq.heappop(ready)
        order.append(tid)
        for child in downstream[tid]:
            missing[child] -= 1
            if missing[child] == 0:
                heapq.heappush(ready, (position[child], child))
    if len(order) != len(upstream):
        cycle = find_cycle(tasks)
        raise GraphError("tasks form a cycle: " + " -> ".join(cycle or sorted(set(upstream) - set(order))))
    return order


def ancestors(tasks: Sequence[TaskSpec], task_id: str) -> list[str]:
    """Every task `task_id` depends on, directly or not, in topological order."""
    upstream = _upstream_map(tasks)
    if task_id not in upstream:
        raise KeyError(f"DAG has no task {task_id!r}")
    found: set[str] = set()
    stack = list(upstream[task_id])
    while stack:
        tid = stack.pop()
        if tid not in found:
            found.add(tid)
            stack.extend(upstream.get(tid, []))
    return [tid for tid in topological_order(tasks) if tid in found]


def leaves(tasks: Sequence[TaskSpec]) -> list[str]:
    """Tasks no other task lists upstream."""
    has_downstream = {up for task in tasks for up in task.upstream_ids}
    return [task.id for task in tasks if task.id not in has_downstream]


def evaluate_trigger_rule(rule: TriggerRule, upstream_phases: Iterable[TaskPhase | None]) -> TaskPhase | None:
    """What a task that has not started becomes, by Airflow's rule.

    Returns RUNNING when the task may start now, UPSTREAM_FAILED or SKIPPED when it never will, and None
    while it must wait. `None` entries in `upstream_phases` are upstream tasks not started yet.
    A task with no upstream tasks always runs.
    """
    phases = list(upstream_phases)
    if not phases:
        return TaskPhase.RUNNING
    total = len(phases)
    success = sum(p == TaskPhase.SUCCEEDED for p in phases)
    skipped = sum(p == TaskPhase.SKIPPED for p in phases)
    failed = sum(p == TaskPhase.FAILED for p in phases)
    upstream_failed = sum(p == TaskPhase.UPSTREAM_FAILED for p in phases)
    done = sum(p is not None and p.finished for p in phases)
    all_done = done == total

    if rule == TriggerRule.ALL_SUCCESS:
        if failed or upstream_failed:
            return TaskPhase.UPSTREAM_FAILED
        if skipped:
            return TaskPhase.SKIPPED
        return TaskPhase.RUNNING if success == total else None
    if rule == TriggerRule.ALL_DONE:
        return TaskPhase.RUNNING if all_done else None
    if rule == TriggerRule.ONE_SUCCESS:
        if success:
            return TaskPhase.RUNNING
        if all_done:
            return TaskPhase.SKIPPED if done == skipped else TaskPhase.UPSTREAM_FAILED
        return None
    if rule == TriggerRule.ONE_FAILED:
        if failed or upstream_failed:
            return TaskPhase.RUNNING
        return TaskPhase.SKIPPED if all_done else None
    if rule == TriggerRule.NONE_FAILED:
        if failed or upstream_failed:
            return TaskPhase.UPSTREAM_FAILED
        return TaskPhase.RUNNING if all_done else None
    raise ValueError(f"unknown trigger rule {rule!r}")


def retry_delay_seconds(task: TaskSpec, failed_attempt: int) -> float:
    """Wait after failed attempt `failed_attempt` (1-based): delay * 2**(attempt-1), capped."""
    delay = task.retry_delay_seconds if task.retry_delay_seconds is not None else DEFAULT_RETRY_DELAY_SECONDS
    cap = task.max_retry_delay_seconds
    cap = cap if cap is not None else DEFAULT_MAX_RETRY_DELAY_SECONDS
    exponent = max(failed_attempt - 1, 0)
    # Cap the exponent first: 2**large would be a needlessly huge int before min() cuts it.
    return float(min(delay * 2 ** min(exponent, 62), cap))


def next_attempt_at(task: TaskSpec, attempts: int, failed_at: datetime) -> datetime | None:
    """When the attempt after failed attempt number `attempts` is due; None when no retries are left."""
    if attempts > (task.retries or 0):
        return None
    return failed_at + timedelta(seconds=retry_delay_seconds(task, attempts))


def run_phase(tasks: Sequence[TaskSpec], phases: Mapping[str, TaskPhase]) -> RunPhase:
    """Airflow's run state: Running until every task finished; then Failed if a leaf failed or
    was upstream-failed, else Succeeded."""
    if not all(task.id in phases and phases[task.id].finished for task in tasks):
        return RunPhase.RUNNING
    failing = {TaskPhase.FAILED, TaskPhase.UPSTREAM_FAILED}
    if any(phases[tid] in failing for tid in leaves(tasks)):
        return RunPhase.FAILED
    return RunPhase.SUCCEEDED


def decide(tasks: Sequence[TaskSpec], states: Mapping[str, TaskState], now: datetime) -> Decision:
    """The scheduling decision for one run, given the state of every task that has a TaskRun.

    Marks cascade in one call: a task marked UpstreamFailed here makes its own downstream tasks
    UpstreamFailed in the same decision, so a handler writes them all at once.
    """
    order = topological_order(tasks)
    by_id = {task.id: task for task in tasks}
    phases: dict[str, TaskPhase] = {tid: state.phase for tid, state in states.items() if tid in by_id}
    start: list[str] = []
    upstream_failed: list[str] = []
    skipped: list[str] = []
    for tid in order:
        if tid in phases:
            continue
        outcome = evaluate_trigger_rule(
            by_id[tid].effective_trigger_rule, (phases.get(up) for up in by_id[tid].upstream_ids)
        )
        if outcome == TaskPhase.RUNNING:
            start.append(tid)
        elif outcome == TaskPhase.UPSTREAM_FAILED:
            upstream_failed.append(tid)
            phases[tid] = outcome
        elif outcome == TaskPhase.SKIPPED:
            skipped.append(tid)
            phases[tid] = outcome
    retry: list[str] = []
    wake_at: datetime | None = None
    for tid in order:
        state = states.get(tid)
        if state is None or state.phase != TaskPhase.RETRYING:
            continue
        if state.next_attempt_at is None or state.next_attempt_at <= now:
            retry.append(tid)
        elif wake_at is None or state.next_attempt_at < wake_at:
            wake_at = state.next_attempt_at
    finished = sum(phase.finished for phase in phases.values())
    return Decision(
        start=tuple(start),
        upstream_failed=tuple(upstream_failed),
        skipped=tuple(skipped),
        retry=tuple(retry),
        phase=run_phase(tasks, phases),
        finished=finished,
        total=len(tasks),
        wake_at=wake_at,
        phases=phases,
    )
