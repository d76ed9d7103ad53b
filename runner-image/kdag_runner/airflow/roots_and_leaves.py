"""Which tasks a task group stands for in a dependency, as Airflow 3 counts them: ``group >> x`` makes
``x`` downstream of the group's leaves, ``x >> group`` makes the group's roots downstream of ``x``, and
``group_a >> group_b`` joins the leaves of one to the roots of the other.

A root has no upstream task inside the group. A leaf has no downstream task inside it, except that a
teardown at the end stands for the work tasks it follows (not its setups), so ``group >> x`` waits for the
work, not for the clean-up. Both are read when the dependency is set, so a task added to a group afterwards
is not connected. Pure functions of the group's tasks (``groups.py`` calls them), which they see through
``LinkedTask``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, TypeVar


class LinkedTask(Protocol):
    """What roots and leaves need of a task; ``BaseOperator`` is the one implementation."""

    is_setup: bool
    is_teardown: bool

    @property
    def task_id(self) -> str: ...

    @property
    def upstream_task_ids(self) -> set[str]: ...

    @property
    def downstream_task_ids(self) -> set[str]: ...

    @property
    def upstream_list(self) -> Sequence[LinkedTask]: ...

    @property
    def downstream_list(self) -> Sequence[LinkedTask]: ...


T = TypeVar("T", bound=LinkedTask)


def roots(tasks: Sequence[T]) -> Iterator[T]:
    """The tasks with no upstream task among ``tasks``."""
    ids = {t.task_id for t in tasks}
    return (t for t in tasks if t.upstream_task_ids.isdisjoint(ids))


def leaves(tasks: Sequence[T]) -> Iterator[T]:
    """The tasks with no downstream task among ``tasks``, a teardown at the end replaced by the work tasks
    it follows."""
    by_id = {t.task_id: t for t in tasks}
    return (by_id[task_id] for task_id in _leaf_ids(tasks, set(by_id)))


def _leaf_ids(tasks: Sequence[LinkedTask], ids: set[str]) -> Iterator[str]:
    def feeds_other_work(task: LinkedTask, teardown_id: str) -> bool:
        return any(
            d.task_id != teardown_id and d.task_id in ids and not d.is_teardown for d in task.downstream_list
        )

    def work_before(teardown: LinkedTask) -> Iterator[str]:
        for up in teardown.upstream_list:
            if up.task_id not in ids:
                continue
            if up.is_teardown:
                yield from work_before(up)
            elif up.is_setup:
                continue
            elif not feeds_other_work(up, teardown.task_id):
                yield up.task_id

    for task in tasks:
        if task.downstream_task_ids.isdisjoint(ids):
            if task.is_teardown:
                yield from work_before(task)
            else:
                yield task.task_id
