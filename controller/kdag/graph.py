"""Every scheduling decision a DAGRun handler makes, as one pure function of data: `decide`.

`decide(tasks, states, now)` is the one call a DAGRun handler needs: which tasks to start, which to mark
UpstreamFailed or Skipped, which retries (and sensors' reschedules) are due, the run's phase, and when
to look again. It puts together the rules that live beside it: `trigger_rules` (with `setup_teardown`),
`mapping` (mapped tasks and groups) and `run_phase`; when a failed task's next attempt is due is `retries`'
answer, which `decide` reads from the task's state.
Trigger rules, setup/teardown tasks, the skip requests of branching tasks and the run's phase follow
Airflow 3's meaning (TriggerRuleDep, the execution API's skip of downstream tasks, DagRun.update_state).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from kdag import mapping
from kdag.api.models import MAX_MAP_LENGTH, RunPhase, TaskDefaults, TaskPhase, TaskSpec
from kdag.run_phase import run_phase
from kdag.setup_teardown import setup_scope
from kdag.task_state import TaskState
from kdag.topology import memo, topological_order
from kdag.trigger_rules import task_outcome


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
    upstream_failed_instances: tuple[tuple[str, int], ...] = ()
    """Instances of tasks of mapped task groups with no TaskRun yet that can never run: instance i of an
    upstream task of the same group (or any other upstream task) failed."""
    skipped_instances: tuple[tuple[str, int], ...] = ()
    """Instances of tasks of mapped task groups with no TaskRun yet skipped by their trigger rule, or because
    a task asked (`skipped_by` names it under the instance's `instance_key`)."""

    @property
    def progress(self) -> str:
        """`N/M`: finished tasks of all tasks (DAGRun status.progress); an expanded mapped task counts as
        its instances."""
        return f"{self.finished}/{self.total}"


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
    task whose trigger rule holds expands (docs/design.md, "Mapped tasks"): `mapping.map_length` of its
    upstream tasks' reported lengths gives N; 0 marks it Skipped, a length it cannot know UpstreamFailed (as
    Airflow's expansion), more than `map.maxLength` Failed; else its instances 0..N-1 that have not
    started are in `start_instances`. Each instance is retried on its own; tasks downstream count every
    instance in their trigger rules. A task of a mapped task group (`map.group`) expands as
    `kdag.mapping` says (over literals at once), and each of its instances then follows its own trigger
    rule over the same instance of the group's tasks upstream of it: single instances marked so are
    `upstream_failed_instances` and `skipped_instances`.

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
    scope = memo(tasks, "setup_scope", lambda: setup_scope(tasks, order))
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
    instance_marks: dict[TaskPhase, list[tuple[str, int]]] = {
        TaskPhase.UPSTREAM_FAILED: [],
        TaskPhase.SKIPPED: [],
    }
    for tid in order:
        if tid in phases:
            continue
        task_map = by_id[tid].map
        skip_instances = False  # a literal mapped group's task a task asked to skip: every instance
        if task_map is not None and instances.get(tid):
            outcome: TaskPhase | None = TaskPhase.RUNNING  # it expanded: its upstream tasks are done
        elif mapping.expands_at_once(by_id[tid]):
            outcome = TaskPhase.RUNNING
            skip_instances = tid in requested
        elif tid in requested:
            outcome = TaskPhase.SKIPPED
            skipped_by[tid] = requested[tid]
        elif mapping.group_of(by_id[tid]) is not None:
            # A task of a mapped group over XComs: it expands once its rule holds over the tasks outside
            # the group and the XComs are in; the group's tasks upstream count instance by instance after.
            view = mapping.upstream_view(by_id[tid], None, by_id, phases, expanded)
            outcome = task_outcome(by_id[tid], by_id, phases, scope, defaults, expanded, view)
            if outcome == TaskPhase.RUNNING and mapping.length_pending(by_id[tid], phases):
                outcome = None
        else:
            outcome = task_outcome(by_id[tid], by_id, phases, scope, defaults, expanded)
        if outcome == TaskPhase.RUNNING and task_map is not None:
            mine = instances.get(tid, {})
            length, why = mapping.expansion(by_id[tid], states, instances, lengths)
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
                for i in range(length):
                    if i in mine:
                        continue
                    mark: TaskPhase | None = TaskPhase.RUNNING
                    if skip_instances:
                        mark = TaskPhase.SKIPPED
                        skipped_by[mapping.instance_key(tid, i)] = requested[tid]
                    elif task_map.group is not None:
                        view = mapping.upstream_view(by_id[tid], i, by_id, phases, expanded)
                        mark = task_outcome(by_id[tid], by_id, phases, scope, defaults, expanded, view)
                    if mark == TaskPhase.RUNNING:
                        start_instances.append((tid, i))
                    elif mark is not None:
                        instance_marks[mark].append((tid, i))
                        expanded[tid][i] = mark
                phases[tid] = mapping.aggregate_phase(expanded[tid])
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
        tid: mapping.count_phases(
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
        upstream_failed_instances=tuple(instance_marks[TaskPhase.UPSTREAM_FAILED]),
        skipped_instances=tuple(instance_marks[TaskPhase.SKIPPED]),
    )
