"""Pure decisions about mapped tasks (Airflow's `partial`/`expand`/`expand_kwargs`) for `graph.decide`:
how many instances a mapped task expands into (`map_length`, `expansion`), how its instances are keyed
(`instance_key`) and summed up (`aggregate_phase`), and, for mapped task groups, which upstream instances an
instance waits for and when the group's length can be read.

Every task of a mapped task group is a mapped task whose `map.group` names the group (all with the group's
length). Instance i of such a task waits only for instance i of the group's tasks upstream of it (Airflow's
`_get_relevant_upstream_map_indexes` with a common mapped group), and for every instance of any other mapped
task upstream; a task of the group marked as a whole (Skipped for no instances, UpstreamFailed) counts as
one phase for each instance downstream of it in the group (docs/design.md, "Mapped tasks").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from kdag.api.models import MAX_MAP_LENGTH, MapLeaf, MapLength, MapTerm, TaskPhase, TaskSpec
from kdag.task_state import TaskState

UpstreamView = Callable[[str], Sequence[TaskPhase | None]]
"""An upstream task id -> the phases a trigger rule counts for it (None: not finished or not started)."""


def group_of(task: TaskSpec) -> str | None:
    """The mapped task group `task` belongs to, or None."""
    return task.map.group if task.map is not None else None


def expands_at_once(task: TaskSpec) -> bool:
    """A task of a mapped task group whose length is a literal: its instances exist from the run's start
    (as Airflow makes them when it creates the run), each then waiting for its own upstream instances."""
    return task.map is not None and task.map.group is not None and not task.map.length.references()


def length_pending(task: TaskSpec, phases: Mapping[str, TaskPhase]) -> bool:
    """True while a task whose XCom the mapped `task`'s length reads has not finished (a mapped one: until
    every instance finished), so the length cannot be read yet."""
    if task.map is None:
        return False
    for ref in task.map.length.references():
        phase = phases.get(ref.task)
        if phase is None or not phase.finished:
            return True
    return False


def upstream_view(
    task: TaskSpec,
    index: int | None,
    by_id: Mapping[str, TaskSpec],
    phases: Mapping[str, TaskPhase],
    expanded: Mapping[str, Sequence[TaskPhase | None]],
) -> UpstreamView:
    """What the trigger rule of a task of a mapped task group counts for each upstream task.

    `index` i: instance i of `task`: an upstream task of the same group that expanded gives its instance
    i's phase; any other expanded mapped task all its instances' phases; a task (or one marked as a whole)
    its phase. `index` None: `task` before it expands: upstream tasks of its group that expanded are left
    out (each instance will wait for its own), the others count as for an instance.
    """
    group = group_of(task)

    def view(up: str) -> Sequence[TaskPhase | None]:
        if up in expanded:
            if group is None or group_of(by_id[up]) != group:
                return expanded[up]
            if index is None:
                return []
            each = expanded[up]
            return [each[index] if index < len(each) else None]
        return [phases.get(up)]

    return view


# -- instances and their expansion ---------------------------------------------------------------------


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


def count_phases(phases: Iterable[TaskPhase]) -> dict[TaskPhase, int]:
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


def mapped_xcom_keys(
    lengths: Mapping[str, int], instances: Mapping[str, Mapping[int, TaskState]]
) -> dict[str, list[list[str]]]:
    """For every mapped task of `lengths` (`Decision.lengths`): the ConfigMap keys each instance pushed, by
    map index (empty for a mapped task marked as a whole): what a pod downstream mounts of each instance."""
    return {
        task_id: [
            sorted(instances[task_id][i].xcom_keys) if i in instances.get(task_id, {}) else []
            for i in range(length)
        ]
        for task_id, length in lengths.items()
    }
