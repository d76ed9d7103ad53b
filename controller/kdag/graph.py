"""The DAG as a graph, and every scheduling decision a handler makes, as pure functions of data.

`decide(tasks, states, now)` is the one call a DAGRun handler needs: which tasks to start, which to mark
UpstreamFailed or Skipped, which retries (and sensors' reschedules) are due, the run's phase, and when
to look again.
Trigger rules, setup/teardown tasks, the skip requests of branching tasks and the run's phase follow
Airflow 3's meaning (TriggerRuleDep, the execution API's skip of downstream tasks, DagRun.update_state).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kdag.api.models import (
    DEFAULT_MAX_RETRY_DELAY_SECONDS,
    DEFAULT_RETRY_DELAY_SECONDS,
    MAX_MAP_LENGTH,
    MapLeaf,
    MapLength,
    MapTerm,
    RunPhase,
    TaskDefaults,
    TaskPhase,
    TaskSpec,
    TriggerRule,
    default_trigger_rule,
)


class GraphError(ValueError):
    """Tasks that do not form a graph (`topological_order`); `kdag.api.validation` refuses such DAGs first."""


@dataclass(frozen=True)
class TaskState:
    """What the controller knows of one task of a run (from its TaskRun status)."""

    phase: TaskPhase
    attempts: int = 0
    next_attempt_at: datetime | None = None
    """When a Retrying task's next attempt, or an UpForReschedule sensor's next poke, is due."""
    skip_tasks: frozenset[str] = frozenset()
    """Tasks a Succeeded task asked to skip (`skipTasks` of its report: a branch's tasks not followed)."""
    reschedules: int = 0
    """Attempts that ended up for reschedule: they are no tries, so `attempts - reschedules` retries used."""
    # What mapped tasks read of it; left out of comparisons (a state is its phase, attempts and due time).
    xcom_lengths: Mapping[str, int] = field(default_factory=dict, compare=False)
    """Length of each pushed list or dict by ConfigMap key (`xcomLengths`): what mapped tasks expand over."""
    xcom_keys: frozenset[str] = field(default=frozenset(), compare=False)
    """ConfigMap keys the task pushed (a mapped upstream's instances count by them)."""


@dataclass(frozen=True)
class Decision:
    """Everything to do for a run now; empty tuples when nothing changes."""

    start: tuple[str, ...] = ()
    """Tasks with no TaskRun yet whose trigger rule holds: create the TaskRun and attempt 1."""
    upstream_failed: tuple[str, ...] = ()
    """Tasks with no TaskRun yet that can never run because upstream tasks failed."""
    skipped: tuple[str, ...] = ()
    """Tasks with no TaskRun yet skipped: by their trigger rule, or because a task asked (`skipped_by`)."""
    skipped_by: dict[str, str] = field(default_factory=dict)
    """Task of `skipped` -> the Succeeded task whose `skipTasks` named it (the rest were skipped by rule)."""
    retry: tuple[str, ...] = ()
    """Retrying and UpForReschedule tasks whose next attempt is due now: start attempt `attempts + 1`."""
    phase: RunPhase = RunPhase.RUNNING
    finished: int = 0
    """Tasks finished (Succeeded, Failed, UpstreamFailed, Skipped), counting this decision's marks."""
    total: int = 0
    wake_at: datetime | None = None
    """Earliest future time something becomes due (a retry): look again then."""
    phases: dict[str, TaskPhase] = field(default_factory=dict)
    """Phase of every task that has one, this decision's marks included (DAGRun status.tasks); a mapped
    task that expanded is Running until all its instances finished, then `aggregate_phase` of them."""
    start_instances: tuple[tuple[str, int], ...] = ()
    """Instances (task, map index) of expanded mapped tasks with no attempt yet: make their TaskRuns (if
    missing) and start attempt 1."""
    retry_instances: tuple[tuple[str, int], ...] = ()
    """Instances of mapped tasks whose next attempt (a retry, a reschedule) is due now."""
    failed: tuple[str, ...] = ()
    """Mapped tasks with no TaskRun yet marked Failed as a whole: more instances than map.maxLength."""
    messages: dict[str, str] = field(default_factory=dict)
    """Why a mapped task was marked as a whole (Failed, Skipped for no instances, UpstreamFailed for a
    length it cannot know); other marks are the trigger rule's or `skipped_by`'s."""
    lengths: dict[str, int] = field(default_factory=dict)
    """Instance count of every mapped task that expanded; 0 for one marked as a whole."""
    instance_phases: dict[str, dict[TaskPhase, int]] = field(default_factory=dict)
    """Expanded mapped task -> its instances by phase (Running for those starting now; not started yet:
    Pending)."""

    @property
    def progress(self) -> str:
        """`N/M`: finished tasks of all tasks (DAGRun status.progress); an expanded mapped task counts as
        its instances."""
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


def _ignorable(task: TaskSpec) -> bool:
    """A teardown whose failure does not count for the run's state (no failRunOnFailure)."""
    return task.is_teardown and not task.fail_run_on_failure


def run_leaves(tasks: Sequence[TaskSpec]) -> list[str]:
    """The tasks whose states decide the run's (Airflow's effective leaves, `DagRun._tis_for_dagrun_state`).

    A task counts when it is not an ignorable teardown and every task directly downstream of it is one: so
    a work task followed only by its teardown counts, and the teardown does not. A teardown with
    failRunOnFailure counts as any task. A DAG of ignorable teardowns only falls back to `leaves`.
    """
    by_id = {task.id: task for task in tasks}
    downstream: dict[str, list[str]] = {task.id: [] for task in tasks}
    for task in tasks:
        for up in task.upstream_ids:
            if up in downstream:
                downstream[up].append(task.id)
    found = [
        task.id
        for task in tasks
        if not _ignorable(task) and all(_ignorable(by_id[d]) for d in downstream[task.id])
    ]
    return found or leaves(tasks)


def evaluate_trigger_rule(
    rule: TriggerRule,
    upstream_phases: Iterable[TaskPhase | None],
    setup_phases: Iterable[TaskPhase | None] = (),
) -> TaskPhase | None:
    """What a task that has not started becomes, by Airflow's rule over its direct upstream tasks.

    Returns RUNNING when the task may start now, UPSTREAM_FAILED or SKIPPED when it never will, and None
    while it must wait. `None` entries in `upstream_phases` are upstream tasks not started yet (as RUNNING,
    RETRYING or PENDING: not finished). `setup_phases` are the phases of the upstream tasks that are setup
    tasks (a part of `upstream_phases`; only all_done_setup_success reads them). A task with no upstream
    tasks, and a task with the `always` rule, runs at once.

    The marks follow Airflow's TriggerRuleDep with `flag_upstream_failed`: a rule that can no longer hold
    marks the task as soon as that is known, without waiting for the other upstream tasks.
    """
    phases = list(upstream_phases)
    if not phases or rule == TriggerRule.ALWAYS:
        return TaskPhase.RUNNING
    total = len(phases)
    success = sum(p == TaskPhase.SUCCEEDED for p in phases)
    skipped = sum(p == TaskPhase.SKIPPED for p in phases)
    failed = sum(p == TaskPhase.FAILED for p in phases)
    upstream_failed = sum(p == TaskPhase.UPSTREAM_FAILED for p in phases)
    all_done = success + skipped + failed + upstream_failed == total
    run, wait = TaskPhase.RUNNING, None
    skip, fail = TaskPhase.SKIPPED, TaskPhase.UPSTREAM_FAILED

    match rule:
        case TriggerRule.ALL_SUCCESS:
            if failed or upstream_failed:
                return fail
            if skipped:
                return skip
            return run if success == total else wait
        case TriggerRule.ALL_FAILED:
            if success or skipped:
                return skip
            return run if all_done else wait
        case TriggerRule.ALL_DONE:
            return run if all_done else wait
        case TriggerRule.ALL_DONE_MIN_ONE_SUCCESS:
            # Airflow counts a skipped upstream as "not done" for this rule: the task is skipped at once.
            if skipped:
                return skip
            if not all_done:
                return wait
            return run if success else fail
        case TriggerRule.ALL_DONE_SETUP_SUCCESS:
            if not all_done:
                return wait
            setups = list(setup_phases)
            if setups and all(p == TaskPhase.SKIPPED for p in setups):
                return skip
            if setups and TaskPhase.SUCCEEDED not in setups:
                return fail
            return run
        case TriggerRule.ALL_SKIPPED:
            if success or failed or upstream_failed:
                return skip
            return run if all_done else wait
        case TriggerRule.ONE_SUCCESS:
            if success:
                return run
            if not all_done:
                return wait
            return skip if skipped == total else fail
        case TriggerRule.ONE_FAILED:
            if failed or upstream_failed:
                return run
            return skip if all_done else wait
        case TriggerRule.ONE_DONE:
            # upstream_failed and skipped upstream tasks are not "done" for one_done.
            if success or failed:
                return run
            return skip if all_done else wait
        case TriggerRule.NONE_FAILED:
            if failed or upstream_failed:
                return fail
            return run if all_done else wait
        case TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS:
            if failed or upstream_failed:
                return fail
            if skipped == total:
                return skip
            return run if all_done else wait
        case TriggerRule.NONE_SKIPPED:
            if skipped:
                return skip
            return run if all_done else wait
    raise ValueError(f"unknown trigger rule {rule!r}")


@dataclass(frozen=True)
class _SetupScope:
    """What setup and teardown tasks add to trigger rules (empty for a DAG without them)."""

    indirect_setups: dict[str, tuple[str, ...]]
    """Work task -> its relevant setups that are not directly upstream: all must succeed first."""
    teardown_scope: dict[str, tuple[str, ...]]
    """Teardown -> tasks between its setups and it, not directly upstream: all must finish first."""


def _setup_scope(tasks: Sequence[TaskSpec], order: Sequence[str]) -> _SetupScope:
    """Airflow's setup constraint (`get_upstreams_only_setups`) and teardown scope, per task.

    A setup S is relevant to a work task T when S is an ancestor of T and S has no teardown, or one of S's
    teardowns is downstream of T. T waits for its relevant setups that are not its direct upstream tasks
    to succeed; one failed makes T UpstreamFailed, one skipped makes it Skipped. A teardown waits, before
    it runs, for every task that is both downstream of one of its direct setups and upstream of it.
    """
    if not any(task.is_setup or task.is_teardown for task in tasks):
        return _SetupScope({}, {})
    by_id = {task.id: task for task in tasks}
    downstream: dict[str, list[str]] = {tid: [] for tid in by_id}
    for task in tasks:
        for up in task.upstream_ids:
            downstream[up].append(task.id)
    above: dict[str, frozenset[str]] = {}
    for tid in order:
        ups = by_id[tid].upstream_ids
        above[tid] = frozenset(ups).union(*(above[up] for up in ups))
    below: dict[str, frozenset[str]] = {}
    for tid in reversed(order):
        below[tid] = frozenset(downstream[tid]).union(*(below[d] for d in downstream[tid]))
    teardowns_of = {tid: {d for d in downstream[tid] if by_id[d].is_teardown} for tid in by_id}
    indirect: dict[str, tuple[str, ...]] = {}
    scope: dict[str, tuple[str, ...]] = {}
    for tid in order:
        task = by_id[tid]
        direct = set(task.upstream_ids)
        if task.is_teardown:
            setups = [up for up in task.upstream_ids if by_id[up].is_setup]
            between: set[str] = set()
            for setup in setups:
                between |= (above[tid] - direct) & below[setup]
            if between:
                scope[tid] = tuple(t for t in order if t in between)
            continue
        below_teardowns = {d for d in below[tid] if by_id[d].is_teardown}
        relevant = [
            s
            for s in order
            if s in above[tid]
            and by_id[s].is_setup
            and s not in direct
            and (not teardowns_of[s] or teardowns_of[s] & below_teardowns)
        ]
        if relevant:
            indirect[tid] = tuple(relevant)
    return _SetupScope(indirect, scope)


def _outcome(
    task: TaskSpec,
    by_id: Mapping[str, TaskSpec],
    phases: Mapping[str, TaskPhase],
    scope: _SetupScope,
    defaults: TaskDefaults | None,
    expanded: Mapping[str, Sequence[TaskPhase | None]] | None = None,
) -> TaskPhase | None:
    """What an undecided task becomes now: its trigger rule, gated by its setups (teardown scope).

    An upstream task in `expanded` (a mapped task that expanded) counts once per instance, with the
    instance's phase (None: not started), as Airflow's trigger rules count every mapped task instance.
    """
    expanded = expanded or {}

    def each(up: str) -> Sequence[TaskPhase | None]:
        return expanded[up] if up in expanded else [phases.get(up)]

    rule = task.trigger_rule or default_trigger_rule(task, defaults)
    ups = task.upstream_ids
    if not ups or rule == TriggerRule.ALWAYS:
        return TaskPhase.RUNNING
    setups_ready = True
    indirect = [phases.get(s) for s in scope.indirect_setups.get(task.id, ())]
    if indirect:
        if TaskPhase.FAILED in indirect or TaskPhase.UPSTREAM_FAILED in indirect:
            return TaskPhase.UPSTREAM_FAILED
        if TaskPhase.SKIPPED in indirect:
            return TaskPhase.SKIPPED
        setups_ready = all(p == TaskPhase.SUCCEEDED for p in indirect)
    outcome = evaluate_trigger_rule(
        rule,
        (phase for up in ups for phase in each(up)),
        (phase for up in ups if by_id[up].is_setup for phase in each(up)),
    )
    if outcome != TaskPhase.RUNNING:
        return outcome
    if not setups_ready:
        return None
    between = scope.teardown_scope.get(task.id, ())
    if not all(tid in phases and phases[tid].finished for tid in between):
        return None
    return outcome


def retry_delay_seconds(task: TaskSpec, failed_attempt: int) -> float:
    """Wait after failed attempt `failed_attempt` (1-based): delay * 2**(attempt-1), capped."""
    delay = task.retry_delay_seconds if task.retry_delay_seconds is not None else DEFAULT_RETRY_DELAY_SECONDS
    cap = task.max_retry_delay_seconds
    cap = cap if cap is not None else DEFAULT_MAX_RETRY_DELAY_SECONDS
    exponent = max(failed_attempt - 1, 0)
    # Cap the exponent first: 2**large would be a needlessly huge int before min() cuts it.
    return float(min(delay * 2 ** min(exponent, 62), cap))


def next_attempt_at(
    task: TaskSpec, attempts: int, failed_at: datetime, *, reschedules: int = 0
) -> datetime | None:
    """When the attempt after failed attempt number `attempts` is due; None when no retries are left.

    `reschedules` of those attempts ended up for reschedule (a sensor's pokes): they are no tries, so the
    failure is try `attempts - reschedules` (Airflow's try_number) for the retry count and its delay.
    """
    tries = attempts - reschedules
    if tries > (task.retries or 0):
        return None
    return failed_at + timedelta(seconds=retry_delay_seconds(task, tries))


def run_phase(tasks: Sequence[TaskSpec], phases: Mapping[str, TaskPhase]) -> RunPhase:
    """Airflow's run state: Running until every task finished; then Failed if a task of `run_leaves`
    failed or was upstream-failed, else Succeeded (so a teardown's failure alone does not fail the run,
    unless it has failRunOnFailure)."""
    if not all(task.id in phases and phases[task.id].finished for task in tasks):
        return RunPhase.RUNNING
    failing = {TaskPhase.FAILED, TaskPhase.UPSTREAM_FAILED}
    if any(phases[tid] in failing for tid in run_leaves(tasks)):
        return RunPhase.FAILED
    return RunPhase.SUCCEEDED


def skip_requests(tasks: Sequence[TaskSpec], states: Mapping[str, TaskState]) -> dict[str, str]:
    """Task -> the Succeeded task whose `skip_tasks` names it, for tasks of `tasks` only.

    Ids that are not tasks of the DAG are ignored. When several tasks name the same task, the first in
    the order of `tasks` is the one recorded.
    """
    by_id = {task.id: task for task in tasks}
    requests: dict[str, str] = {}
    for tid in by_id:
        state = states.get(tid)
        if state is None or state.phase != TaskPhase.SUCCEEDED:
            continue
        for target in sorted(state.skip_tasks):
            if target in by_id and target not in requests:
                requests[target] = tid
    return requests


def decide(
    tasks: Sequence[TaskSpec],
    states: Mapping[str, TaskState],
    now: datetime,
    *,
    defaults: TaskDefaults | None = None,
    instances: Mapping[str, Mapping[int, TaskState]] | None = None,
) -> Decision:
    """The scheduling decision for one run, given the state of every task that has a TaskRun.

    `instances` are the states of mapped tasks' instances (task -> map index -> state, for the instance
    TaskRuns that started); `states` holds the other tasks and mapped tasks marked as a whole. A mapped
    task whose trigger rule holds expands (docs/design.md, "Mapped tasks"): `map_length` of its upstream
    tasks' reported lengths gives N; 0 marks it Skipped, a length it cannot know UpstreamFailed (as
    Airflow's expansion), more than `map.maxLength` Failed; else its instances 0..N-1 that have not
    started are in `start_instances`. Each instance is retried on its own; tasks downstream count every
    instance in their trigger rules.

    `defaults` (the DAG's `spec.defaults`) gives the trigger rule of tasks that set none; tasks already
    resolved (`DAGSpec.resolved_task`) need none. Marks cascade in one call: a task marked UpstreamFailed
    here makes its own downstream tasks UpstreamFailed in the same decision, so a handler writes them all
    at once. A task not decided yet that a Succeeded task asked to skip (`TaskState.skip_tasks`, as a
    branch does) is Skipped before its trigger rule is looked at, as Airflow's skip of downstream tasks
    sets them Skipped directly; tasks after it then follow their trigger rules.
    """
    order = topological_order(tasks)
    by_id = {task.id: task for task in tasks}
    phases: dict[str, TaskPhase] = {tid: state.phase for tid, state in states.items() if tid in by_id}
    requested = skip_requests(tasks, states)
    scope = _setup_scope(tasks, order)
    start: list[str] = []
    upstream_failed: list[str] = []
    skipped: list[str] = []
    skipped_by: dict[str, str] = {}
    instances = instances or {}
    expanded: dict[str, list[TaskPhase | None]] = {}
    start_instances: list[tuple[str, int]] = []
    failed: list[str] = []
    messages: dict[str, str] = {}
    lengths: dict[str, int] = {}
    for tid in order:
        if tid in phases:
            continue
        task_map = by_id[tid].map
        if task_map is not None and instances.get(tid):
            outcome: TaskPhase | None = TaskPhase.RUNNING  # it expanded: its upstream tasks are done
        elif tid in requested:
            outcome = TaskPhase.SKIPPED
            skipped_by[tid] = requested[tid]
        else:
            outcome = _outcome(by_id[tid], by_id, phases, scope, defaults, expanded)
        if outcome == TaskPhase.RUNNING and task_map is not None:
            mine = instances.get(tid, {})
            length, why = expansion(by_id[tid], states, instances, lengths)
            if mine:
                length = max(length or 0, max(mine) + 1)  # never fewer than the instances that exist
            if length is None:
                outcome = TaskPhase.UPSTREAM_FAILED
                messages[tid] = why
            elif length == 0:
                outcome = TaskPhase.SKIPPED
                messages[tid] = why
            elif not mine and length > (task_map.max_length or MAX_MAP_LENGTH):
                failed.append(tid)
                phases[tid] = TaskPhase.FAILED
                messages[tid] = why
                lengths[tid] = 0
                continue
            else:
                lengths[tid] = length
                expanded[tid] = [mine[i].phase if i in mine else None for i in range(length)]
                start_instances.extend((tid, i) for i in range(length) if i not in mine)
                phases[tid] = aggregate_phase(expanded[tid])
                continue
            lengths[tid] = 0
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
        if state is None or state.phase not in (TaskPhase.RETRYING, TaskPhase.UP_FOR_RESCHEDULE):
            continue
        if state.next_attempt_at is None or state.next_attempt_at <= now:
            retry.append(tid)
        elif wake_at is None or state.next_attempt_at < wake_at:
            wake_at = state.next_attempt_at
    retry_instances: list[tuple[str, int]] = []
    for tid in order:
        for index, state in sorted(instances.get(tid, {}).items()):
            if tid not in expanded or state.phase not in (TaskPhase.RETRYING, TaskPhase.UP_FOR_RESCHEDULE):
                continue
            if state.next_attempt_at is None or state.next_attempt_at <= now:
                retry_instances.append((tid, index))
            elif wake_at is None or state.next_attempt_at < wake_at:
                wake_at = state.next_attempt_at
    finished = sum(phase.finished for tid, phase in phases.items() if tid not in expanded)
    finished += sum(p is not None and p.finished for each in expanded.values() for p in each)
    started = set(start_instances)
    instance_phases = {
        tid: _count_phases(
            TaskPhase.RUNNING if (tid, i) in started else (p or TaskPhase.PENDING) for i, p in enumerate(each)
        )
        for tid, each in expanded.items()
    }
    return Decision(
        start=tuple(start),
        upstream_failed=tuple(upstream_failed),
        skipped=tuple(skipped),
        skipped_by=skipped_by,
        retry=tuple(retry),
        phase=run_phase(tasks, phases),
        finished=finished,
        total=len(tasks) + sum(len(each) - 1 for each in expanded.values()),
        wake_at=wake_at,
        phases=phases,
        start_instances=tuple(start_instances),
        retry_instances=tuple(retry_instances),
        failed=tuple(failed),
        messages=messages,
        lengths=lengths,
        instance_phases=instance_phases,
    )


# -- dynamic task mapping -----------------------------------------------------------------------------


def instance_key(task_id: str, map_index: int) -> str:
    """`task_id[i]`: instance i of a mapped task where states are keyed by one string (task ids hold no
    brackets): the local run's and the handler's keys, and `kdag run --local -o json`'s task names."""
    return f"{task_id}[{map_index}]"


def split_instance_key(key: str) -> tuple[str, int | None]:
    """The task id and map index (None for a task, or a mapped task as a whole) of an `instance_key`."""
    if key.endswith("]") and "[" in key:
        task_id, _, index = key[:-1].rpartition("[")
        if index.isdigit():
            return task_id, int(index)
    return key, None


def split_states(
    states: Mapping[str, TaskState],
) -> tuple[dict[str, TaskState], dict[str, dict[int, TaskState]]]:
    """States keyed by task id or `instance_key`, as `decide` takes them: tasks (and mapped tasks marked as a
    whole), and mapped instances by task and map index."""
    plain: dict[str, TaskState] = {}
    instances: dict[str, dict[int, TaskState]] = {}
    for key, state in states.items():
        task_id, index = split_instance_key(key)
        if index is None:
            plain[key] = state
        else:
            instances.setdefault(task_id, {})[index] = state
    return plain, instances


def aggregate_phase(phases: Sequence[TaskPhase | None]) -> TaskPhase:
    """One phase for a mapped task's instances (DAGRun status.tasks, the run's phase, setup checks):
    Running until every instance finished; then Failed, UpstreamFailed, Succeeded or Skipped, the first
    of those any instance has (so a failed instance of a leaf fails the run, as in Airflow)."""
    if not phases or any(p is None or not p.finished for p in phases):
        return TaskPhase.RUNNING
    for phase in (TaskPhase.FAILED, TaskPhase.UPSTREAM_FAILED, TaskPhase.SUCCEEDED):
        if phase in phases:
            return phase
    return TaskPhase.SKIPPED


def _count_phases(phases: Iterable[TaskPhase]) -> dict[TaskPhase, int]:
    counts: dict[TaskPhase, int] = {}
    for phase in phases:
        counts[phase] = counts.get(phase, 0) + 1
    return counts


def map_length(node: MapLength | MapTerm | MapLeaf, lookup: Callable[[str, str], int | None]) -> int | None:
    """The length a map expression comes to, `lookup(task, key)` giving an upstream XCom's length (None:
    not known); None when one it needs is not known. As Airflow 3's `get_task_map_length`: zip is as long
    as the shortest (the longest with fill), concat the sum; product is the number of combinations."""
    if node.literal is not None:
        return node.literal
    if node.xcom is not None:
        return lookup(node.xcom.task, node.xcom.key)
    if isinstance(node, MapLeaf):
        return None
    parts: Sequence[MapLength | MapTerm | MapLeaf] = (
        (node.product if isinstance(node, MapLength) else None) or node.zip or node.concat or []
    )
    found = [map_length(part, lookup) for part in parts]
    known = [n for n in found if n is not None]
    if not found or len(known) != len(found):
        return None
    if isinstance(node, MapLength) and node.product:
        return math.prod(known)
    if node.zip:
        return max(known) if node.fill else min(known)
    return sum(known)


def upstream_length(
    task_id: str,
    key: str,
    states: Mapping[str, TaskState],
    instances: Mapping[str, Mapping[int, TaskState]],
    lengths: Mapping[str, int],
) -> int | None:
    """The length of upstream task `task_id`'s XCom `key` as a mapped task downstream sees it: the length a
    Succeeded task reported (None: it pushed no list or dict there, or did not succeed); for a mapped task,
    how many of its instances pushed the key once all finished (Airflow counts a mapped task's values)."""
    if task_id in lengths:
        done = instances.get(task_id, {})
        if len(done) < lengths[task_id] or not all(state.phase.finished for state in done.values()):
            return None  # as Airflow: not every instance finished, so the length is not known yet
        return sum(key in state.xcom_keys for state in done.values())
    state = states.get(task_id)
    if state is None or state.phase != TaskPhase.SUCCEEDED:
        return None
    return state.xcom_lengths.get(key)


def expansion(
    task: TaskSpec,
    states: Mapping[str, TaskState],
    instances: Mapping[str, Mapping[int, TaskState]],
    lengths: Mapping[str, int],
) -> tuple[int | None, str]:
    """How many instances the mapped `task` expands into once its upstream tasks are done (`lengths`: the
    mapped tasks decided before it), and why it is marked as a whole instead when it is: None (an XCom it
    maps over has no known length), 0, or more than its maxLength."""
    if task.map is None:
        raise ValueError(f"task {task.id!r} is not mapped")
    missing: list[str] = []

    def lookup(task_id: str, key: str) -> int | None:
        length = upstream_length(task_id, key, states, instances, lengths)
        if length is None:
            missing.append(f"XCom {key!r} of task {task_id!r}")
        return length

    length = map_length(task.map.length, lookup)
    cap = task.map.max_length or MAX_MAP_LENGTH
    if length is None:
        return None, (
            "cannot expand: no list or dict to map over in "
            + ", ".join(missing)
            + " (not pushed, not a list or dict, or its length was not reported)"
        )
    if length == 0:
        return 0, "mapped over 0 elements"
    if length > cap:
        return length, f"cannot expand into {length} instances: more than max_map_length ({cap})"
    return length, ""
