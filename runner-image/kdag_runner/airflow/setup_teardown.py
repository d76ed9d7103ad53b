"""Setup and teardown tasks as context managers: ``with setup >> teardown:``, ``with teardown:``,
``with my_teardown.as_teardown(setups=...):`` (Airflow 3's ``SetupTeardownContext``).

Entering the ``with`` of a setup or teardown task (or of its XComArg) starts recording the tasks made in
the block; leaving it wires them in, as Airflow does:

- a teardown entered: the block's work tasks with no downstream task become its upstream tasks (none:
  the last one made), and the setups found nearest upstream of the teardown become upstream of the work
  tasks with no upstream task (none: the first one made);
- a setup entered: the work tasks with no upstream task go downstream of it (none: the first one made),
  and the nearest teardowns downstream of the setup go downstream of the work tasks with no downstream
  task (none: the last one made);
- nested blocks: the inner setup goes downstream of the outer setup, the outer teardown downstream of
  the inner one.

"Nearest" is Airflow's search: the teardown's direct upstream tasks, then their neighbours either way,
level by level, until a level holds setups (for a setup: its direct downstream tasks, looking for
teardowns). Setup and teardown tasks made inside the block, and mapped tasks (which Airflow makes
without ``BaseOperator.__init__``), are not wired. As in Airflow, leaving an inner block stops the
recording for the rest of the outer one.

This module sits below ``xcom_arg.py`` and ``operators.py``: it sees tasks through the ``ScopedTask``
Protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, cast

from kdag_runner.airflow.exceptions import DagDefinitionError


class ScopedTask(Protocol):
    """A task as the setup/teardown context sees it; ``BaseOperator`` is the one implementation."""

    @property
    def task_id(self) -> str: ...

    is_setup: bool
    is_teardown: bool

    @property
    def upstream_list(self) -> list[Any]: ...

    @property
    def downstream_list(self) -> list[Any]: ...

    def set_upstream(self, other: Any, edge_modifier: Any = None) -> None: ...

    def set_downstream(self, other: Any, edge_modifier: Any = None) -> None: ...


Scope: TypeAlias = "tuple[ScopedTask, ...]"
"""The setup (or teardown) tasks of one ``with``: one task, or the tasks of a list."""


@dataclass
class _Stack:
    """The current value of one kind of scope and the outer ones it hides."""

    current: Scope = ()
    outer: list[Scope] = field(default_factory=list)

    def push(self, scope: Scope) -> None:
        if self.current and self.current != scope:
            self.outer.append(self.current)
        self.current = scope

    def pop(self) -> tuple[Scope, Scope]:
        """Leave the current scope: (the scope left, the outer one now current, () if none)."""
        left = self.current
        self.current = self.outer.pop() if self.outer else ()
        return left, self.current


@dataclass
class _Recording:
    active: bool = False
    tasks: dict[Scope, list[ScopedTask]] = field(default_factory=dict)
    """The tasks made inside each entered setup's or teardown's block, in the order they were made."""
    setups: _Stack = field(default_factory=_Stack)
    """The setups entered with ``with``."""
    teardowns: _Stack = field(default_factory=_Stack)
    """The teardowns entered with ``with``."""
    teardowns_of_setup: _Stack = field(default_factory=_Stack)
    """For an entered setup: the teardowns nearest downstream of it."""
    setups_of_teardown: _Stack = field(default_factory=_Stack)
    """For an entered teardown: the setups nearest upstream of it."""


_recording = _Recording()


def enter(tasks: ScopedTask | Sequence[ScopedTask]) -> None:
    """Start a ``with`` block of a setup or teardown task (or a list of either, not both)."""
    scope: Scope = tuple(tasks) if isinstance(tasks, list | tuple) else (cast("ScopedTask", tasks),)
    for task in scope:
        if not (task.is_setup or task.is_teardown):
            raise DagDefinitionError(
                f"task '{task.task_id}': only setup and teardown tasks can be used as context managers"
                " (`with`); mark it with as_setup() or as_teardown(), or make it with @setup or @teardown"
            )
    if any(t.is_setup != scope[0].is_setup for t in scope):
        ids = ", ".join(f"'{t.task_id}'" for t in scope)
        raise DagDefinitionError(f"tasks {ids}: a `with` of several tasks needs all setups or all teardowns")
    if scope[0].is_teardown:
        _recording.teardowns.push(scope)
        _recording.setups_of_teardown.push(_nearest(scope[0], "is_setup", scope[0].upstream_list))
    else:
        _recording.setups.push(scope)
        _recording.teardowns_of_setup.push(_nearest(scope[0], "is_teardown", scope[0].downstream_list))
    _recording.active = True


def note_new_task(task: ScopedTask) -> None:
    """A task was made: record it in the blocks entered, when one is recording."""
    if not _recording.active or task.is_setup or task.is_teardown or getattr(task, "is_mapped", False):
        return
    for stack in (_recording.setups, _recording.teardowns):
        if stack.current:
            _recording.tasks.setdefault(stack.current, []).append(task)


def leave() -> None:
    """End the innermost ``with`` block: wire its work tasks to its setups and teardowns."""
    setup, teardown = _recording.setups.current, _recording.teardowns.current
    if setup:
        work = _work(setup)
        if work:
            roots = [t for t in work if not t.upstream_list] or [work[0]]
            _link(setup, roots)
            leaves = [t for t in work if not t.downstream_list] or [work[-1]]
            # An entered teardown takes the place of the block's last tasks (Airflow's order of wiring).
            _link(teardown or tuple(leaves), _recording.teardowns_of_setup.current)
    if teardown:
        work = _work(teardown)
        if work:
            leaves = [t for t in work if not t.downstream_list] or [work[-1]]
            _link(tuple(leaves), teardown)
            roots = [t for t in work if not t.upstream_list] or [work[0]]
            _link(_recording.setups_of_teardown.current, setup or tuple(roots))
    left, outer = _recording.setups.pop()
    _link(outer, left)  # an outer setup runs before the inner one
    left_teardown, outer_teardown = _recording.teardowns.pop()
    _link(left_teardown, outer_teardown)  # an inner teardown runs before the outer one
    left, outer = _recording.teardowns_of_setup.pop()
    _link(left, outer)
    left, outer = _recording.setups_of_teardown.pop()
    _link(outer, left)
    _recording.tasks.pop(setup, None)
    _recording.tasks.pop(teardown, None)
    _recording.active = False


def reset() -> None:
    """Forget every block: an exception left one (the DAG file fails to load; no block stays open)."""
    global _recording
    _recording = _Recording()


def exit_block(exc_type: object) -> None:
    """Leave a ``with`` block (``__exit__`` of a task or its XComArg): ``leave``, or ``reset`` after an
    exception."""
    if exc_type is None:
        leave()
    else:
        reset()


def _work(scope: Scope) -> list[ScopedTask]:
    return [t for t in _recording.tasks.get(scope, []) if not t.is_setup and not t.is_teardown]


def _link(upstream: Sequence[ScopedTask], downstream: Sequence[ScopedTask]) -> None:
    for down in downstream:
        for up in upstream:
            down.set_upstream(up)


def _nearest(start: ScopedTask, mark: str, first: list[Any]) -> Scope:
    """The tasks with ``mark`` (``is_setup``/``is_teardown``) nearest ``start``: in ``first``, else among
    their neighbours (upstream and downstream, ``start`` left out), level by level; () if none."""
    level = [t for t in first if t is not start]
    seen = {id(start), *(id(t) for t in level)}
    while level:
        found = tuple(t for t in level if getattr(t, mark))
        if found:
            return found
        following = []
        for task in level:
            for neighbour in (*task.downstream_list, *task.upstream_list):
                if id(neighbour) not in seen:
                    seen.add(id(neighbour))
                    following.append(neighbour)
        level = following
    return ()
