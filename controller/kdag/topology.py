"""The DAG as a graph, pure: cycles, topological order, ancestors, leaves.

A run's reconcile pass and each of its pods ask the same questions of the same task list: the answers are
computed once per list (`memo`), so a pass over a 5,000-task DAG costs a walk over its tasks, not a sort.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kdag.api.models import TaskSpec

_T = TypeVar("_T")
_MEMO_SIZE = 64
_memo: OrderedDict[tuple[int, str], tuple[Sequence[TaskSpec], Any]] = OrderedDict()


def memo(tasks: Sequence[TaskSpec], what: str, compute: Callable[[], _T]) -> _T:
    """`compute()`, once per task list object and `what`: a DAG's tasks are parsed once per DAG version
    (`kdag.dag_versions`) and never changed after, so the list object stands for its content. The entry
    holds the list itself, so its id cannot be reused by another list while the entry lives."""
    key = (id(tasks), what)
    hit = _memo.get(key)
    if hit is not None and hit[0] is tasks:
        _memo.move_to_end(key)
        value: _T = hit[1]
        return value
    value = compute()
    _memo[key] = (tasks, value)
    if len(_memo) > _MEMO_SIZE:
        _memo.popitem(last=False)
    return value


class GraphError(ValueError):
    """Tasks that do not form a graph (`topological_order`); `kdag.api.validation` refuses such DAGs first."""


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
    return list(memo(tasks, "order", lambda: tuple(_topological_order(tasks))))


def _positions(tasks: Sequence[TaskSpec]) -> dict[str, int]:
    """Each task's place in the topological order."""
    return memo(tasks, "positions", lambda: {tid: i for i, tid in enumerate(topological_order(tasks))})


def _topological_order(tasks: Sequence[TaskSpec]) -> list[str]:
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
    upstream = memo(tasks, "upstream", lambda: _upstream_map(tasks))
    if task_id not in upstream:
        raise KeyError(f"DAG has no task {task_id!r}")
    found: set[str] = set()
    stack = list(upstream[task_id])
    while stack:
        tid = stack.pop()
        if tid not in found:
            found.add(tid)
            stack.extend(upstream.get(tid, []))
    positions = _positions(tasks)
    return sorted(found, key=positions.__getitem__)


def nearest_ancestors(
    tasks: Sequence[TaskSpec], task_id: str, limit: int, first: Sequence[str] = ()
) -> tuple[list[str], bool]:
    """At most `limit` ancestors of `task_id`, in topological order: the `first` ones (ancestors a task
    names, such as its xcomInputs), then the nearest by breadth-first walk (direct upstream tasks, theirs,
    ...); and whether any ancestor was left out. The walk stops at `limit`: O(limit), not O(ancestors)."""
    upstream = memo(tasks, "upstream", lambda: _upstream_map(tasks))
    if task_id not in upstream:
        raise KeyError(f"DAG has no task {task_id!r}")
    found: dict[str, None] = {}
    queue = [*first, *upstream[task_id]]
    cut = False
    head = 0
    while head < len(queue):
        tid = queue[head]
        head += 1
        if tid in found or tid not in upstream:
            continue
        if len(found) >= limit:
            cut = True
            break
        found[tid] = None
        queue.extend(upstream[tid])
    positions = _positions(tasks)
    return sorted(found, key=positions.__getitem__), cut


def leaves(tasks: Sequence[TaskSpec]) -> list[str]:
    """Tasks no other task lists upstream."""
    has_downstream = {up for task in tasks for up in task.upstream_ids}
    return [task.id for task in tasks if task.id not in has_downstream]
