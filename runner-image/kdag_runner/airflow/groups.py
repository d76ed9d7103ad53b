"""Task groups: Airflow's ``TaskGroup`` and ``@task_group``.

A group prefixes the ids of what it holds (``group.task``, nested ``outer.inner.task``) unless
``prefix_group_id=False``, lends its ``default_args`` (merged over its parent group's, and under a task's
own) to the tasks created in it, and stands for its tasks in dependencies: ``group >> x`` makes ``x``
downstream of the group's leaves, ``x >> group`` makes the group's roots downstream of ``x``, and
``group_a >> group_b`` joins the leaves of one to the roots of the other, as Airflow 3 does. Roots and
leaves are read when the dependency is set, so a task added to a group afterwards is not connected.
Tooltips, colours and display names are kept and have no effect. A group changes nothing at run time:
kdag runs the tasks, whose ids carry the prefix.

This module sits below ``dags.py``: every DAG owns a root group (``DAG.task_group``, id ``None``), made
here, which the ``with DAG(...)`` block pushes on the same stack ``with TaskGroup(...)`` uses, so a group
finds its DAG through its parent and this module never imports ``dags.py``. It sees the DAG through
``GroupDag`` and tasks through ``GroupTask``; ``operators.py`` puts each new operator in the current group.
Mapped task groups (``@task_group(...).expand``) are dynamic task mapping, which kdag does not run yet.

Branching into a group (Airflow's ``BranchMixIn._expand_task_group_roots``): a followed id that is a key
of ``dag.task_group_dict`` (full ids: ``group``, ``outer.inner``) stands for that group's root tasks,
``[t.task_id for t in dag.task_group_dict[group_id].roots]``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from kdag_runner.airflow.dependencies import DependencyMixin
from kdag_runner.airflow.exceptions import DagDefinitionError

# Airflow's GROUP_KEY_REGEX (no dots: a dot separates a group from its child) and its 200-character limit.
GROUP_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
GROUP_ID_MAX_LENGTH = 200


class GroupTask(Protocol):
    """What a group needs of a task; ``BaseOperator`` is the one implementation."""

    task_group: TaskGroup | None
    is_setup: bool
    is_teardown: bool

    @property
    def task_id(self) -> str: ...

    @property
    def upstream_task_ids(self) -> set[str]: ...

    @property
    def downstream_task_ids(self) -> set[str]: ...

    @property
    def upstream_list(self) -> Sequence[GroupTask]: ...

    @property
    def downstream_list(self) -> Sequence[GroupTask]: ...

    def set_upstream(self, other: Any) -> None: ...

    def set_downstream(self, other: Any) -> None: ...


class GroupDag(Protocol):
    """What a group needs of its DAG; ``DAG`` (``dags.py``) is the one implementation."""

    @property
    def dag_id(self) -> str: ...

    @property
    def task_dict(self) -> Mapping[str, GroupTask]: ...

    @property
    def task_group(self) -> TaskGroup: ...


# Groups (and DAG root groups) being defined with ``with``, innermost last.
_active_groups: list[TaskGroup] = []


def current_group() -> TaskGroup | None:
    """The innermost group of the ``with`` blocks being run (a DAG's root group inside ``with DAG``)."""
    return _active_groups[-1] if _active_groups else None


def push_group(group: TaskGroup) -> None:
    _active_groups.append(group)


def pop_group(group: TaskGroup) -> None:
    _active_groups.remove(group)


def group_of_new_task(dag: GroupDag | None, explicit: TaskGroup | None) -> TaskGroup | None:
    """The group a task created now joins: ``task_group=``, else the current group of its DAG, else the
    DAG's root group (None for a task without a DAG and outside any group)."""
    if explicit is not None:
        if not isinstance(explicit, TaskGroup):
            raise DagDefinitionError(f"task_group must be a TaskGroup, got {type(explicit).__name__}")
        return explicit
    current = current_group()
    if current is not None and (dag is None or current.dag is dag):
        return current
    return dag.task_group if dag is not None else None


def _check_group_id(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise DagDefinitionError(f"TaskGroup {value!r}: group_id must be a non-empty string")
    if len(value) > GROUP_ID_MAX_LENGTH:
        raise DagDefinitionError(f"TaskGroup '{value}': longer than {GROUP_ID_MAX_LENGTH} characters")
    if not GROUP_ID_PATTERN.fullmatch(value):
        raise DagDefinitionError(
            f"TaskGroup '{value}': group_id may contain only letters, digits, dashes and underscores"
        )
    return value


def _node_id(node: object) -> str | None:
    """A task's id or a group's id (what Airflow calls node_id)."""
    if isinstance(node, TaskGroup):
        return node.group_id
    task_id = getattr(node, "task_id", None)
    if task_id is None:
        operator = getattr(node, "operator", None)  # an XComArg
        task_id = getattr(operator, "task_id", None)
    return task_id if isinstance(task_id, str) else None


class TaskGroup(DependencyMixin):
    """A set of tasks (and groups) shown together in Airflow's UI; here: id prefixes, default_args and
    dependencies on the whole set. Use ``with TaskGroup("id"):`` or pass ``task_group=`` to operators."""

    _group_id: str | None
    dag: GroupDag
    parent_group: TaskGroup | None
    prefix_group_id: bool
    children: dict[str, TaskGroup | GroupTask]
    default_args: dict[str, Any]
    tooltip: str
    ui_color: str
    ui_fgcolor: str
    group_display_name: str
    doc_md: str | None
    # What was set against the group as a whole (Airflow keeps these to draw fewer edges).
    upstream_group_ids: set[str | None]
    downstream_group_ids: set[str | None]
    upstream_task_ids: set[str]
    downstream_task_ids: set[str]

    def __init__(
        self,
        group_id: str,
        prefix_group_id: bool = True,
        parent_group: TaskGroup | None = None,
        dag: GroupDag | None = None,
        default_args: Mapping[str, Any] | None = None,
        tooltip: str = "",
        ui_color: str = "CornflowerBlue",
        ui_fgcolor: str = "#000",
        add_suffix_on_collision: bool = False,
        group_display_name: str = "",
        doc_md: str | None = None,
    ) -> None:
        label = _check_group_id(group_id)
        if default_args is not None and not isinstance(default_args, Mapping):
            raise DagDefinitionError(f"TaskGroup '{label}': default_args must be a dict")
        if parent_group is None:
            current = current_group()
            if current is not None and (dag is None or current.dag is dag):
                parent_group = current
            elif dag is not None:
                parent_group = dag.task_group
        if parent_group is None:
            raise DagDefinitionError(
                f"TaskGroup '{label}': must be created in a DAG (in `with DAG(...)` or @dag, or with dag=)"
            )
        if dag is not None and parent_group.dag is not dag:
            raise DagDefinitionError(f"TaskGroup '{label}': its parent group belongs to another DAG")
        self._init(label, parent_group.dag, parent_group, prefix_group_id)
        self.default_args = {**parent_group.default_args, **dict(default_args or {})}
        self.tooltip = tooltip
        self.ui_color = ui_color
        self.ui_fgcolor = ui_fgcolor
        self.group_display_name = group_display_name
        self.doc_md = doc_md
        if self.group_id in self._used_ids():
            if not add_suffix_on_collision:
                raise DagDefinitionError(
                    f"TaskGroup '{self.group_id}': group_id already used in DAG '{self.dag.dag_id}'"
                )
            self._group_id = self._free_label(label)
        parent_group.add(self)

    def _init(self, label: str | None, dag: GroupDag, parent: TaskGroup | None, prefix: bool) -> None:
        self._group_id = label
        self.dag = dag
        self.parent_group = parent
        self.prefix_group_id = prefix
        self.children = {}
        self.default_args = {}
        self.tooltip = ""
        self.ui_color = "CornflowerBlue"
        self.ui_fgcolor = "#000"
        self.group_display_name = ""
        self.doc_md = None
        self.upstream_group_ids = set()
        self.downstream_group_ids = set()
        self.upstream_task_ids = set()
        self.downstream_task_ids = set()

    @classmethod
    def create_root(cls, dag: GroupDag) -> TaskGroup:
        """The root group of a DAG: no id, no parent; top-level tasks and groups are its children."""
        root = cls.__new__(cls)
        root._init(None, dag, None, True)
        return root

    # -- ids ---------------------------------------------------------------------------------------

    @property
    def group_id(self) -> str | None:
        """The full id (``outer.inner`` when the parent prefixes); None for a DAG's root group."""
        parent = self.parent_group
        if self._group_id and parent is not None and parent.prefix_group_id and parent._group_id:
            return parent.child_id(self._group_id)
        return self._group_id

    @property
    def node_id(self) -> str | None:
        return self.group_id

    @property
    def label(self) -> str | None:
        """The id without the parent's prefix (what Airflow's UI shows)."""
        return self.group_display_name or self._group_id

    @property
    def is_root(self) -> bool:
        return self._group_id is None

    @property
    def task_group(self) -> TaskGroup | None:
        """The parent group, as for a task (None for the root)."""
        return self.parent_group

    def child_id(self, label: str) -> str:
        """``group.label`` when this group prefixes its children, else ``label``."""
        group_id = self.group_id
        return f"{group_id}.{label}" if self.prefix_group_id and group_id else label

    def _used_ids(self) -> set[str]:
        """Ids a new group may not take: every group id and task id of the DAG."""
        root = self.dag.task_group
        return {gid for gid in root.get_task_group_dict() if gid is not None} | set(self.dag.task_dict)

    def _free_label(self, label: str) -> str:
        """``label__N`` with N one more than the highest taken (Airflow's add_suffix_on_collision)."""
        parent = self.parent_group
        assert parent is not None
        base = re.sub(r"__\d+$", "", label)
        taken = re.compile(re.escape(parent.child_id(base)) + r"__(\d+)")
        used = self._used_ids()
        numbers = [int(m.group(1)) for gid in used if (m := taken.fullmatch(gid))]
        return f"{base}__{max(numbers, default=0) + 1}"

    def __repr__(self) -> str:
        return f"<TaskGroup: {self.group_id}>"

    # -- members -----------------------------------------------------------------------------------

    def add(self, node: TaskGroup | GroupTask) -> TaskGroup | GroupTask:
        """Make ``node`` (a task or a new group) a child of this group."""
        if isinstance(node, TaskGroup):
            key = node.group_id
            kind = "TaskGroup"
        else:
            existing = node.task_group
            if existing is not None and existing is not self:
                raise DagDefinitionError(
                    f"task '{node.task_id}': already in group '{existing.group_id}', cannot join "
                    f"'{self.group_id}'"
                )
            node.task_group = self
            key = node.task_id
            kind = "task"
        assert key is not None
        if key in self.children and self.children[key] is not node:
            raise DagDefinitionError(f"{kind} '{key}': id already used in DAG '{self.dag.dag_id}'")
        self.children[key] = node
        return node

    def __iter__(self) -> Iterator[GroupTask]:
        """The tasks of this group and of its groups, depth first in definition order."""
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                yield from child
            else:
                yield child

    def iter_tasks(self) -> Iterator[GroupTask]:
        return iter(self)

    def has_task(self, task: GroupTask) -> bool:
        """True when ``task`` is in this group or one of its groups."""
        return any(member is task for member in self)

    def get_task_group_dict(self) -> dict[str | None, TaskGroup]:
        """This group and every group inside it by full id (the root's id is None)."""
        found: dict[str | None, TaskGroup] = {self.group_id: self}
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                found.update(child.get_task_group_dict())
        return found

    def get_child_by_label(self, label: str) -> TaskGroup | GroupTask:
        """A child by its id without this group's prefix."""
        return self.children[self.child_id(label)]

    def __getitem__(self, label: str) -> TaskGroup | GroupTask:
        try:
            return self.get_child_by_label(label)
        except KeyError:
            raise KeyError(f"Task {label!r} not found") from None

    # -- roots and leaves --------------------------------------------------------------------------

    @property
    def roots(self) -> list[GroupTask]:
        return list(self.get_roots())

    @property
    def leaves(self) -> list[GroupTask]:
        return list(self.get_leaves())

    def get_roots(self) -> Iterator[GroupTask]:
        """The tasks of the group with no upstream task inside the group."""
        tasks = list(self)
        ids = {t.task_id for t in tasks}
        return (t for t in tasks if t.upstream_task_ids.isdisjoint(ids))

    def get_leaves(self) -> Iterator[GroupTask]:
        """The tasks of the group with no downstream task inside it, as Airflow counts them: a teardown
        at the end stands for the work tasks it follows (not its setups), so ``group >> x`` waits for the
        work, not for the clean-up."""
        tasks = list(self)
        ids = {t.task_id for t in tasks}

        def feeds_other_work(task: GroupTask, teardown_id: str) -> bool:
            return any(
                d.task_id != teardown_id and d.task_id in ids and not d.is_teardown
                for d in task.downstream_list
            )

        def work_before(teardown: GroupTask) -> Iterator[GroupTask]:
            for up in teardown.upstream_list:
                if up.task_id not in ids:
                    continue
                if up.is_teardown:
                    yield from work_before(up)
                elif up.is_setup:
                    continue
                elif not feeds_other_work(up, teardown.task_id):
                    yield up

        for task in tasks:
            if task.downstream_task_ids.isdisjoint(ids):
                if task.is_teardown:
                    yield from work_before(task)
                else:
                    yield task

    def _leaves_or_fallback(self) -> list[GroupTask]:
        """Leaves for ``group >> x``; an empty group falls back, as in Airflow, on the tasks set upstream
        of it, else on its parent group's leaves."""
        group: TaskGroup | None = self
        while group is not None:
            leaves = list(group.get_leaves())
            if leaves:
                return leaves
            if group.upstream_task_ids:
                return [group.dag.task_dict[tid] for tid in sorted(group.upstream_task_ids)]
            group = group.parent_group
        return []

    # -- dependencies ------------------------------------------------------------------------------

    def update_relative(self, other: Any, upstream: bool = True, edge_modifier: Any = None) -> None:
        """Remember that ``other`` was set upstream (or downstream) of the group as a whole."""
        if isinstance(other, TaskGroup):
            parent, child = (self, other) if upstream else (other, self)
            parent.upstream_group_ids.add(child.group_id)
            child.downstream_group_ids.add(parent.group_id)
            return
        roots = getattr(other, "roots", None)
        for node in list(roots) if roots is not None else [other]:
            if node is self:
                continue
            node_id = _node_id(node)
            if node_id is not None:
                (self.upstream_task_ids if upstream else self.downstream_task_ids).add(node_id)

    def _relate(self, other: Any, upstream: bool) -> None:
        items = list(other) if isinstance(other, list | tuple | set) else [other]
        leaves = [] if upstream else self._leaves_or_fallback()
        for item in items:
            self.update_relative(item, upstream)
        if upstream:
            for root in self.get_roots():
                root.set_upstream(other)
        else:
            for leaf in leaves:
                leaf.set_downstream(other)

    def set_upstream(self, other: Any, edge_modifier: Any = None) -> None:
        """Make the group's roots downstream of ``other``."""
        self._relate(other, upstream=True)
        _record_edge(edge_modifier, other, self)

    def set_downstream(self, other: Any, edge_modifier: Any = None) -> None:
        """Make ``other`` downstream of the group's leaves."""
        self._relate(other, upstream=False)
        _record_edge(edge_modifier, self, other)





    # -- with --------------------------------------------------------------------------------------

    def __enter__(self) -> TaskGroup:
        push_group(self)
        return self

    def __exit__(self, *exc: object) -> None:
        pop_group(self)


def _record_edge(edge_modifier: Any, upstream: Any, downstream: Any) -> None:
    """Let an edge label (``edges.EdgeModifier``) record the edges it names; it changes nothing else."""
    if edge_modifier is None:
        return
    for up in upstream if isinstance(upstream, list | tuple | set) else [upstream]:
        for down in downstream if isinstance(downstream, list | tuple | set) else [downstream]:
            up_id, down_id = _node_id(up), _node_id(down)
            dag = getattr(up, "dag", None) or getattr(down, "dag", None)
            if up_id is not None and down_id is not None and dag is not None:
                edge_modifier.add_edge_info(dag, up_id, down_id)


_GROUP_OPTIONS = frozenset(
    {
        "group_id",
        "prefix_group_id",
        "parent_group",
        "dag",
        "default_args",
        "tooltip",
        "ui_color",
        "ui_fgcolor",
        "add_suffix_on_collision",
        "group_display_name",
        "doc_md",
    }
)


class TaskGroupFunction:
    """A function decorated with ``@task_group``: each call runs it inside a new group (``name``,
    ``name__1``, ... when called again) and returns what it returns, or the group when that is None, so
    ``group_function() >> task`` connects either the returned task or the whole group."""

    def __init__(self, function: Callable[..., Any], options: Mapping[str, Any]) -> None:
        if not callable(function):
            raise DagDefinitionError(f"@task_group: needs a function, got {type(function).__name__}")
        unknown = sorted(set(options) - _GROUP_OPTIONS)
        if unknown:
            raise DagDefinitionError(f"@task_group '{function.__name__}': unknown argument '{unknown[0]}'")
        self.function = function
        self.options = {"group_id": function.__name__, **options}
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        options = {"add_suffix_on_collision": True, **self.options}
        with TaskGroup(**options) as group:
            doc = self.function.__doc__
            if doc:
                group.tooltip = group.tooltip or doc
                group.doc_md = group.doc_md or doc
            result = self.function(*args, **kwargs)
        return group if result is None else result

    def override(self, **options: Any) -> TaskGroupFunction:
        """The same function with other group arguments (``group_id=`` ...)."""
        return TaskGroupFunction(self.function, {**self.options, **options})

    def _mapped(self, *args: Any, **kwargs: Any) -> Any:
        # kdag maps tasks (mapping.py), not groups: refused where the DAG file asks, naming its file and line.
        import os
        import traceback

        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
        outside = [f for f in traceback.extract_stack() if not f.filename.startswith(package)]
        at = f"DAG file '{outside[-1].filename}', line {outside[-1].lineno}: " if outside else ""
        raise DagDefinitionError(
            f"{at}@task_group '{self.options['group_id']}': mapped task groups (expand, expand_kwargs,"
            " partial) are dynamic task mapping, which kdag does not run yet (map the tasks in the group)"
        )

    expand = expand_kwargs = partial = _mapped


def task_group(python_callable: Any = None, **options: Any) -> Any:
    """Airflow's ``@task_group`` / ``@task_group(group_id=..., default_args=..., ...)``.

    As in Airflow, a positional argument counts only when it is the function: ``@task_group("name")``
    names nothing (the group takes the function's name); give ``group_id="name"``.
    """
    if callable(python_callable) and not options:
        return TaskGroupFunction(python_callable, {})
    return lambda function: TaskGroupFunction(function, options)
