"""``DAG``, the dag and task id rules, the ``with DAG(...)`` stack and every DAG this process created.

This module sits below ``operators.py``: an operator joins the active DAG, reads its ``default_args`` and
checks it is a ``DAG``, so ``operators.py`` imports this module, and this module never imports
``operators.py`` (nor any module that does). A DAG sees its tasks only through the ``DagTask`` Protocol:
what it needs to hold, order and walk them. The back-reference ``task.dag`` is set here, by
``DAG.add_task``; a task's own edges (``_upstream``/``_downstream``) live on the operator.

Every DAG has a root task group (``DAG.task_group``, ``groups.py``, which sits below this module); ``with
DAG(...)`` pushes it on the group stack, so groups and operators made inside find the DAG through it.
``DAG.task_group_dict`` finds a group by its full id (``outer.inner``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from kdag_runner.airflow.exceptions import DagDefinitionError
from kdag_runner.airflow.groups import GroupTask, TaskGroup, pop_group, push_group
from kdag_runner.airflow.params import ParamsDict, params_dict

# Airflow's KEY_REGEX and ID_LEN: the characters and length Airflow allows in dag and task ids.
ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
ID_MAX_LENGTH = 250


def check_id(kind: str, value: object) -> str:
    """Return ``value`` when Airflow would accept it as a dag or task id."""
    if not isinstance(value, str) or not value:
        raise DagDefinitionError(f"{kind} {value!r}: must be a non-empty string")
    if len(value) > ID_MAX_LENGTH:
        raise DagDefinitionError(f"{kind} '{value}': longer than {ID_MAX_LENGTH} characters")
    if not ID_PATTERN.fullmatch(value):
        raise DagDefinitionError(
            f"{kind} '{value}': may contain only letters, digits, dashes, dots and underscores"
        )
    return value


# DAGs being defined with ``with DAG(...)``, innermost last.
_active_dags: list[DAG] = []
# Every DAG constructed in this process, in order; the loader looks at those a file made.
created_dags: list[DAG] = []


_DAG_ARGUMENTS = frozenset(
    {
        "description",
        "schedule",
        "schedule_interval",
        "timetable",
        "start_date",
        "end_date",
        "full_filepath",
        "template_searchpath",
        "template_undefined",
        "user_defined_macros",
        "user_defined_filters",
        "default_args",
        "concurrency",
        "max_active_tasks",
        "max_active_runs",
        "max_consecutive_failed_dag_runs",
        "dagrun_timeout",
        "sla_miss_callback",
        "default_view",
        "orientation",
        "catchup",
        "on_success_callback",
        "on_failure_callback",
        "doc_md",
        "params",
        "access_control",
        "is_paused_upon_creation",
        "jinja_environment_kwargs",
        "render_template_as_native_obj",
        "tags",
        "owner_links",
        "auto_register",
        "fail_stop",
        "fail_fast",
        "dag_display_name",
        "deadline",
        "disable_bundle_versioning",
    }
)


class DagTask(GroupTask, Protocol):
    """What a DAG needs of its tasks: their ids, their edges, their group (``GroupTask``) and the ``dag``
    attribute it sets.

    ``BaseOperator`` (``operators.py``) is the one implementation; code that needs an operator's other
    attributes narrows with ``isinstance``.
    """

    dag: DAG | None

    @property
    def task_id(self) -> str: ...

    @property
    def upstream_task_ids(self) -> set[str]: ...

    @property
    def upstream_list(self) -> Sequence[DagTask]: ...

    @property
    def downstream_list(self) -> Sequence[DagTask]: ...


class DAG:
    """A set of tasks and their dependencies (Airflow's ``DAG``); a context manager."""

    def __init__(self, dag_id: str, description: str | None = None, **kwargs: Any) -> None:
        self.dag_id = check_id("DAG", dag_id)
        unknown = sorted(set(kwargs) - _DAG_ARGUMENTS)
        if unknown:
            raise DagDefinitionError(f"DAG '{dag_id}': unknown argument '{unknown[0]}'")
        self.description = description
        schedule = kwargs.pop("schedule", None)
        interval = kwargs.pop("schedule_interval", None)
        if schedule is not None and interval is not None:
            raise DagDefinitionError(f"DAG '{dag_id}': give schedule or schedule_interval, not both")
        self.schedule: Any = schedule if schedule is not None else interval
        self.start_date: datetime | None = kwargs.pop("start_date", None)
        self.end_date: datetime | None = kwargs.pop("end_date", None)
        self.default_args: dict[str, Any] = dict(kwargs.pop("default_args", None) or {})
        if self.start_date is None:
            self.start_date = self.default_args.get("start_date")
        params = params_dict(kwargs.pop("params", None))
        if "params" in self.default_args:  # as Airflow: default_args' params are the DAG's params
            params.update(self.default_args.pop("params") or {})
        self.params: ParamsDict = params
        self.catchup: bool = bool(kwargs.pop("catchup", False))
        self.tags: list[str] = list(kwargs.pop("tags", None) or [])
        # Read by templating.py (template_env), as Airflow's DAG.get_template_env reads them.
        searchpath = kwargs.pop("template_searchpath", None)
        self.template_searchpath: list[str] | None = (
            [searchpath] if isinstance(searchpath, str) else list(searchpath) if searchpath else None
        )
        self.user_defined_macros: dict[str, Any] | None = kwargs.pop("user_defined_macros", None)
        self.user_defined_filters: dict[str, Any] | None = kwargs.pop("user_defined_filters", None)
        self.render_template_as_native_obj: bool = bool(kwargs.pop("render_template_as_native_obj", False))
        self.jinja_environment_kwargs: dict[str, Any] | None = kwargs.pop("jinja_environment_kwargs", None)
        self.template_undefined: Any = kwargs.pop("template_undefined", None)
        self.extra: dict[str, Any] = kwargs
        self.task_dict: dict[str, DagTask] = {}
        self.task_group: TaskGroup = TaskGroup.create_root(self)
        # Edge labels (edges.Label): upstream node id -> downstream node id -> {"label": ...}.
        self.edge_info: dict[str, dict[str, dict[str, Any]]] = {}
        self.fileloc: str | None = None
        created_dags.append(self)

    @property
    def schedule_interval(self) -> Any:
        return self.schedule

    @property
    def tasks(self) -> list[DagTask]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    @property
    def task_group_dict(self) -> dict[str, TaskGroup]:
        """Every task group of the DAG by full id (``group``, ``outer.inner``), the root group left out.

        For branching (Airflow's ``BranchMixIn._expand_task_group_roots``): a followed id that is a key
        here stands for the group's root tasks, ``[t.task_id for t in dag.task_group_dict[gid].roots]``
        (roots: the group's tasks, nested groups' included, with no upstream task inside the group).
        """
        return {gid: group for gid, group in self.task_group.get_task_group_dict().items() if gid is not None}

    def has_task_group(self, task_group_id: str) -> bool:
        return task_group_id in self.task_group_dict

    @property
    def roots(self) -> list[DagTask]:
        """Tasks without upstream tasks."""
        return [t for t in self.tasks if not t.upstream_task_ids]

    @property
    def leaves(self) -> list[DagTask]:
        """Tasks without downstream tasks."""
        return [t for t in self.tasks if not t.downstream_task_ids]

    @property
    def folder(self) -> str | None:
        """The folder of the DAG file (templates are looked up there first)."""
        return os.path.dirname(self.fileloc) if self.fileloc else None

    def set_edge_info(self, upstream_id: str, downstream_id: str, info: dict[str, Any]) -> None:
        """Record an edge label (``Label``); it has no effect on running the DAG."""
        self.edge_info.setdefault(upstream_id, {})[downstream_id] = info

    def get_edge_info(self, upstream_id: str, downstream_id: str) -> dict[str, Any]:
        return self.edge_info.get(upstream_id, {}).get(downstream_id, {})

    def __enter__(self) -> DAG:
        _active_dags.append(self)
        push_group(self.task_group)
        return self

    def __exit__(self, *exc: object) -> None:
        pop_group(self.task_group)
        _active_dags.remove(self)

    def __repr__(self) -> str:
        return f"<DAG: {self.dag_id}>"

    def add_task(self, task: DagTask) -> None:
        """Add ``task``; a second task with the same id, or a task named as a group, is an error
        (Airflow's DuplicateTaskIdFound). A task not in a group yet joins the root group."""
        existing = self.task_dict.get(task.task_id)
        if existing is task:
            return
        if existing is not None:
            raise DagDefinitionError(f"task '{task.task_id}': duplicate task_id in DAG '{self.dag_id}'")
        if task.task_id in self.task_group_dict:
            raise DagDefinitionError(
                f"task '{task.task_id}': a task group of DAG '{self.dag_id}' has this id"
            )
        if task.task_group is None:
            self.task_group.add(task)
        self.task_dict[task.task_id] = task
        task.dag = self

    def add_tasks(self, tasks: Iterable[DagTask]) -> None:
        for task in tasks:
            self.add_task(task)

    def get_task(self, task_id: str) -> DagTask:
        try:
            return self.task_dict[task_id]
        except KeyError:
            raise DagDefinitionError(f"task '{task_id}': not in DAG '{self.dag_id}'") from None

    def has_task(self, task_id: str) -> bool:
        return task_id in self.task_dict

    def topological_order(self) -> list[DagTask]:
        """Tasks with every task after its upstream tasks; ties in definition order."""
        pending = {t.task_id: len(t.upstream_task_ids) for t in self.tasks}
        ready = [t for t in self.tasks if pending[t.task_id] == 0]
        order: list[DagTask] = []
        while ready:
            task = ready.pop(0)
            order.append(task)
            for child in task.downstream_list:
                pending[child.task_id] -= 1
                if pending[child.task_id] == 0:
                    ready.append(child)
        return order

    def ancestors_of(self, task_id: str) -> list[str]:
        """Every task upstream of ``task_id``, directly or not, in topological order."""
        found: set[str] = set()
        stack = list(self.get_task(task_id).upstream_list)
        while stack:
            task = stack.pop()
            if task.task_id not in found:
                found.add(task.task_id)
                stack.extend(task.upstream_list)
        return [t.task_id for t in self.topological_order() if t.task_id in found]


def get_active_dag() -> DAG | None:
    return _active_dags[-1] if _active_dags else None
