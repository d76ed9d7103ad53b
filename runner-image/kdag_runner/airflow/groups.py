"""Task groups: Airflow's ``TaskGroup`` (``@task_group`` is in ``group_decorator.py``).

A group prefixes the ids of what it holds (``group.task``, nested ``outer.inner.task``) unless
``prefix_group_id=False``, lends its ``default_args`` (merged over its parent group's, and under a task's
own) to the tasks created in it, and stands for its tasks in dependencies (``roots_and_leaves.py``).
Tooltips, colours and display names are kept and have no effect. A group changes nothing at run time: kdag
runs the tasks, whose ids carry the prefix.

This module sits below ``dags.py``: every DAG owns a root group (``DAG.task_group``, id ``None``), made
here, which the ``with DAG(...)`` block pushes on the same stack ``with TaskGroup(...)`` uses, so a group
finds its DAG through its parent and this module never imports ``dags.py``. It sees the DAG through
``GroupDag`` and tasks through ``GroupTask``; ``operators.py`` puts each new operator in the current group.
Mapped task groups are made by ``mapping.py``, which sits above this module; here a group only says whether
it is mapped (``is_mapped``, ``closest_mapped_group``).

Branching into a group (Airflow's ``BranchMixIn._expand_task_group_roots``): a followed id that is a key
of ``dag.task_group_dict`` (full ids: ``group``, ``outer.inner``) stands for that group's root tasks,
``[t.task_id for t in dag.task_group_dict[group_id].roots]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from kdag_runner.airflow import roots_and_leaves
from kdag_runner.airflow.dependencies import DependencyMixin
from kdag_runner.airflow.exceptions import DagDefinitionError

# Airflow's GROUP_KEY_REGEX (no dots: a dot separates a group from its child) and its 200-character limit.
GROUP_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
GROUP_ID_MAX_LENGTH = 200


class GroupTask(roots_and_leaves.LinkedTask, Protocol):
    """What a group needs of a task: its id and edges (``LinkedTask``), its group, a way to add edges;
    ``BaseOperator`` is the one implementation."""

    task_group: TaskGroup | None

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

    is_mapped = False
    """True for a mapped task group (``mapping.MappedTaskGroup``): its tasks run as instances."""
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
        return roots_and_leaves.roots(list(self))

    def get_leaves(self) -> Iterator[GroupTask]:
        """The tasks of the group with no downstream task inside it; a teardown at the end stands for the
        work tasks it follows (``roots_and_leaves.py``)."""
        return roots_and_leaves.leaves(list(self))

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


def closest_mapped_group(node: object) -> TaskGroup | None:
    """The innermost mapped task group holding ``node`` (a task, or a group: itself first), else None
    (Airflow's ``get_closest_mapped_task_group``)."""
    group = node if isinstance(node, TaskGroup) else getattr(node, "task_group", None)
    while isinstance(group, TaskGroup):
        if group.is_mapped:
            return group
        group = group.parent_group
    return None


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
