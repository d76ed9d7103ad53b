"""Edge labels and the dependency helpers of Airflow's ``baseoperator``: ``Label``
(``a >> Label("x") >> b``), ``chain``, ``chain_linear`` and ``cross_downstream``.

A label is recorded on the DAG (``DAG.edge_info``, ``DAG.get_edge_info``) and changes nothing at run
time. As in Airflow, a label between nodes of different task groups connects their groups instead
(``a >> Label("x") >> b`` with ``a`` in group ``g`` makes ``b`` downstream of ``g``'s leaves), so the
dependencies are exactly the ones Airflow builds.

This module sits below ``operators.py``, which accepts labels in ``>>``; it sees tasks only through
``set_upstream``/``set_downstream``/``>>`` and their ``task_group``, and never imports ``operators.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from kdag_runner.airflow.dependencies import DependencyMixin
from kdag_runner.airflow.exceptions import DagDefinitionError
from kdag_runner.airflow.groups import TaskGroup
from kdag_runner.airflow.xcom_arg import XComArg


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple | set) else [value]


class EdgeModifier(DependencyMixin):
    """Information on the edges between what is on its left and what is on its right (Airflow's)."""

    def __init__(self, label: str | None = None) -> None:
        self.label = label
        self._upstream: list[Any] = []
        self._downstream: list[Any] = []

    def __repr__(self) -> str:
        return f"Label({self.label!r})"

    @property
    def roots(self) -> list[Any]:
        return list(self._downstream)

    @property
    def leaves(self) -> list[Any]:
        return list(self._upstream)

    def _save(self, nodes: Any, stream: list[Any]) -> None:
        for node in _as_list(nodes):
            if isinstance(node, TaskGroup | XComArg) or hasattr(node, "task_id"):
                stream.append(node)
            else:
                raise DagDefinitionError(
                    f"Label({self.label!r}): cannot label an edge to {type(node).__name__}, only to tasks,"
                    " XComArgs or TaskGroups"
                )

    def _to_groups_when_mixed(self) -> None:
        """Airflow's rule: when the two sides are not all in one group, each task stands for its group."""
        seen: set[str | None] = set()
        for node in [*self._upstream, *self._downstream]:
            owner = node.operator if isinstance(node, XComArg) else node
            group = getattr(owner, "task_group", None)
            if group is not None:
                seen.add("root" if group.is_root else group.group_id)
        if len(seen) == 1:
            return

        def group_of(node: Any) -> Any:
            group = None if isinstance(node, XComArg) else getattr(node, "task_group", None)
            return group if group is not None and not group.is_root else node

        self._upstream = [group_of(n) for n in self._upstream]
        self._downstream = [group_of(n) for n in self._downstream]

    def set_upstream(self, other: Any, edge_modifier: Any = None) -> None:
        """Put ``other`` on the left; once both sides are known, connect them."""
        self._save(other, self._upstream)
        if self._upstream and self._downstream:
            self._to_groups_when_mixed()
        for node in self._downstream:
            node.set_upstream(other, edge_modifier=self)

    def set_downstream(self, other: Any, edge_modifier: Any = None) -> None:
        """Put ``other`` on the right; once both sides are known, connect them."""
        self._save(other, self._downstream)
        if self._upstream and self._downstream:
            self._to_groups_when_mixed()
        for node in self._upstream:
            node.set_downstream(other, edge_modifier=self)

    def update_relative(self, other: Any, upstream: bool = True, edge_modifier: Any = None) -> None:
        """Called when a task sets this label on one of its sides."""
        if upstream:
            self.set_upstream(other)
        else:
            self.set_downstream(other)

    def add_edge_info(self, dag: Any, upstream_id: str, downstream_id: str) -> None:
        """Record this label on the DAG for one edge."""
        dag.set_edge_info(upstream_id, downstream_id, {"label": self.label})


def Label(label: str) -> EdgeModifier:
    """An edge label: ``a >> Label("when it rains") >> b``."""
    return EdgeModifier(label)


def _is_node(value: Any) -> bool:
    return not isinstance(value, Sequence) or isinstance(value, str)


def chain(*tasks: Any) -> None:
    """``chain(a, [b, c], d)``: each element downstream of the previous; two lists pair up. An element is a
    task, an XComArg, a task group, an edge label or a list of them."""
    for left, right in itertools.pairwise(tasks):
        if not isinstance(left, list | tuple):
            left.set_downstream(right)
            continue
        if not isinstance(right, list | tuple):
            right.set_upstream(left)
            continue
        if len(left) != len(right):
            raise DagDefinitionError(
                f"chain: lists of different lengths ({len(left)} and {len(right)}) cannot pair up"
            )
        for up, down in zip(left, right, strict=True):
            up.set_downstream(down)


def chain_linear(*elements: Any) -> None:
    """Each element downstream of every task of the element before it:
    ``chain_linear(a, [b, c], [d, e, f], g)`` gives a >> b, c; b, c >> d, e, f; d, e, f >> g."""
    if not elements:
        raise DagDefinitionError("chain_linear: no tasks given; nothing to do")
    previous: list[Any] | None = None
    connected = False
    for element in elements:
        if isinstance(element, EdgeModifier):
            raise DagDefinitionError("chain_linear: labels are not supported by chain_linear")
        if previous is not None:
            for task in previous:
                task >> element
                connected = True
        previous = [element] if _is_node(element) else list(element)
    if not connected:
        raise DagDefinitionError("chain_linear: no dependencies were set. Did you forget to expand with `*`?")


def cross_downstream(from_tasks: Sequence[Any], to_tasks: Any) -> None:
    """Every task of ``to_tasks`` downstream of every task of ``from_tasks``."""
    for task in from_tasks:
        task.set_downstream(to_tasks)
