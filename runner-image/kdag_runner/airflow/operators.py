"""``BaseOperator``: a task's id, DAG and group, its dependencies (``>>``, ``<<``, ``set_upstream``),
setup and teardown, and what ``run_task`` (``task_runner.py``) calls on it: the hooks, ``execute``, the
callbacks and the result's push.

Subclasses defined in DAG files work as in Airflow: their ``__init__`` takes keyword arguments only, its
parameters default to the DAG's ``default_args`` (``arguments.py``), and an ``XComArg`` in a template field
makes its task upstream (Airflow's ``BaseOperatorMeta``). Template fields are read and rendered by the
``Templater`` it mixes in (``templater.py``); ``log`` is a logger of ``task_log.py``. This module imports
``dags.py`` and ``xcom_arg.py``, which see an operator only through Protocols (``DagTask``,
``XComSource``), so there is no import cycle. Operators with an ``execute`` of their own live in their own
modules (``empty.py``, ``python.py``, ``bash.py``, ``branching.py``); ``chain`` is in ``edges.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from kdag_runner.airflow import arguments, setup_teardown
from kdag_runner.airflow.dags import DAG, check_id
from kdag_runner.airflow.dependencies import DependencyMixin
from kdag_runner.airflow.edges import EdgeModifier
from kdag_runner.airflow.exceptions import AirflowException, DagDefinitionError
from kdag_runner.airflow.groups import TaskGroup, closest_mapped_group
from kdag_runner.airflow.params import ParamsDict, params_dict
from kdag_runner.airflow.task_log import task_logger
from kdag_runner.airflow.templater import Templater
from kdag_runner.airflow.trigger_rules import TriggerRule
from kdag_runner.airflow.xcom_arg import XComArg, find_xcom_args

TaskOrTasks: TypeAlias = "BaseOperator | Sequence[BaseOperator]"

# ``Operator.partial(...)`` makes the arguments of a mapped task; ``mapping.py`` (which sits above this
# module: a MappedOperator is a BaseOperator) registers the factory when the package is imported.
_partial_factory: list[Callable[[type[BaseOperator], dict[str, Any]], Any]] = []


def register_partial(factory: Callable[[type[BaseOperator], dict[str, Any]], Any]) -> None:
    """Set what ``BaseOperator.partial`` returns (``mapping.operator_partial``)."""
    _partial_factory[:] = [factory]


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BaseOperator(Templater, DependencyMixin):
    """A task: its id, DAG, dependencies and the arguments kdag maps onto a TaskRun."""

    ui_color: str = "#fff"
    ui_fgcolor: str = "#000"
    on_execute_callback: list[Callable[..., Any]]
    on_failure_callback: list[Callable[..., Any]]
    on_success_callback: list[Callable[..., Any]]
    on_retry_callback: list[Callable[..., Any]]
    on_skipped_callback: list[Callable[..., Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_kdag_applies_defaults", False):
            setattr(cls, "__init__", arguments.apply_defaults(init))  # noqa: B010 (mypy refuses assigning a method)

    def __init__(self, *, task_id: str, dag: DAG | None = None, **kwargs: Any) -> None:
        check_id("task", task_id)
        dag, group = arguments.dag_and_group(task_id, dag, kwargs.pop("task_group", None))
        if group is not None:
            task_id = group.child_id(task_id)  # ``group.task``, as Airflow prefixes ids (groups.py)
        self.task_id = check_id("task", task_id)
        self.definition_site: tuple[str, int] | None = _definition_site(self)
        defaults = arguments.parent_defaults(dag, group)
        defaults.update(kwargs.pop("default_args", None) or {})
        values = arguments.argument_values(task_id, type(self).__name__, kwargs, defaults)
        self.owner: str = values["owner"]
        self.retries: int = arguments.non_negative_int(task_id, "retries", values["retries"])
        self.retry_delay: timedelta = arguments.duration(task_id, "retry_delay", values["retry_delay"])
        self.retry_exponential_backoff: bool = bool(values["retry_exponential_backoff"])
        max_delay = values["max_retry_delay"]
        self.max_retry_delay: timedelta | None = (
            None if max_delay is None else arguments.duration(task_id, "max_retry_delay", max_delay)
        )
        timeout = values["execution_timeout"]
        self.execution_timeout: timedelta | None = (
            None if timeout is None else arguments.duration(task_id, "execution_timeout", timeout)
        )
        self.trigger_rule = arguments.trigger_rule(task_id, values["trigger_rule"])
        self.params: ParamsDict = params_dict(values["params"])
        self.start_date: datetime | None = values["start_date"]
        self.do_xcom_push: bool = bool(values["do_xcom_push"])
        self.multiple_outputs: bool = bool(values["multiple_outputs"])
        self.options: dict[str, Any] = values
        self.unhonoured_arguments: dict[str, Any] = arguments.unhonoured(values, set(kwargs) | set(defaults))
        for name in arguments.CALLBACKS:
            setattr(self, name, arguments.callback_list(task_id, name, values[name]))
        self._pre_execute_hook: Callable[..., Any] | None = values["pre_execute"]
        self._post_execute_hook: Callable[..., Any] | None = values["post_execute"]
        if isinstance(self.template_fields, str):
            self.template_fields = [self.template_fields]  # Airflow wraps a lone name (with a warning)
        self._upstream: dict[str, BaseOperator] = {}
        self._downstream: dict[str, BaseOperator] = {}
        # Setup and teardown (Airflow's as_setup/as_teardown, @setup/@teardown): compile writes them into
        # the TaskSpec (setup, teardown, failRunOnFailure).
        self.is_setup = False
        self.is_teardown = False
        self.on_failure_fail_dagrun = False
        self.task_group: TaskGroup | None = group
        self.dag: DAG | None = None
        if dag is not None:
            dag.add_task(self)
        if group is not None:
            group.add(self)
        setup_teardown.note_new_task(self)  # made inside `with setup >> teardown:`

    def __repr__(self) -> str:
        return f"<Task({type(self).__name__}): {self.task_id}>"

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """Airflow's ``Operator.partial(task_id=..., **shared)``: the arguments every instance of a mapped
        task shares; ``.expand(**mapped)`` or ``.expand_kwargs(...)`` on the result makes the task
        (``mapping.py``)."""
        if not _partial_factory:
            raise DagDefinitionError(f"{cls.__name__}.partial(): dynamic task mapping is not loaded")
        return _partial_factory[0](cls, kwargs)

    # -- dependencies ----------------------------------------------------------------------------

    @property
    def upstream_task_ids(self) -> set[str]:
        return set(self._upstream)

    @property
    def downstream_task_ids(self) -> set[str]:
        return set(self._downstream)

    @property
    def upstream_list(self) -> list[BaseOperator]:
        return list(self._upstream.values())

    @property
    def downstream_list(self) -> list[BaseOperator]:
        return list(self._downstream.values())

    def set_upstream(self, other: TaskOrTasks | XComArg, edge_modifier: Any = None) -> None:
        """Make ``other`` (tasks, XComArgs, task groups: their leaves, edge labels) upstream of this task."""
        tasks = _as_tasks(self, other, upstream=True)
        for task in tasks:
            _relate(task, self)
            if edge_modifier is not None and self.dag is not None:
                edge_modifier.add_edge_info(self.dag, task.task_id, self.task_id)

    def set_downstream(self, other: TaskOrTasks | XComArg, edge_modifier: Any = None) -> None:
        """Make ``other`` (tasks, XComArgs, task groups: their roots, edge labels) downstream of this task."""
        tasks = _as_tasks(self, other, upstream=False)
        for task in tasks:
            _relate(self, task)
            if edge_modifier is not None and self.dag is not None:
                edge_modifier.add_edge_info(self.dag, self.task_id, task.task_id)

    @property
    def roots(self) -> list[BaseOperator]:
        return [self]

    @property
    def leaves(self) -> list[BaseOperator]:
        return [self]

    def as_setup(self) -> BaseOperator:
        """Mark this task a setup task (Airflow's ``as_setup``)."""
        if self.is_teardown:
            raise DagDefinitionError(f"task '{self.task_id}': cannot be a setup, it is already a teardown")
        self.is_setup = True
        return self

    def as_teardown(
        self, *, setups: Any = None, on_failure_fail_dagrun: bool | None = None
    ) -> BaseOperator:
        """Mark this task a teardown (rule ``all_done_setup_success``) and ``setups`` setups upstream of it
        (Airflow's ``as_teardown``)."""
        if self.is_setup:
            raise DagDefinitionError(f"task '{self.task_id}': cannot be a teardown, it is already a setup")
        self.is_teardown = True
        self.trigger_rule = TriggerRule.ALL_DONE_SETUP_SUCCESS
        if on_failure_fail_dagrun is not None:
            self.on_failure_fail_dagrun = bool(on_failure_fail_dagrun)
        if setups is not None:
            for setup in setups if isinstance(setups, list | tuple | set) else [setups]:
                setup.as_setup()
                setup >> self
        return self

    def __enter__(self) -> BaseOperator:
        """`with setup >> teardown:`, `with teardown:`: the tasks made in the block go between the setups
        and the teardowns (``setup_teardown.py``)."""
        setup_teardown.enter(self)
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        setup_teardown.exit_block(exc_type)

    def get_direct_relative_ids(self, upstream: bool = False) -> set[str]:
        return self.upstream_task_ids if upstream else self.downstream_task_ids

    def get_direct_relatives(self, upstream: bool = False) -> list[BaseOperator]:
        return self.upstream_list if upstream else self.downstream_list

    def get_flat_relative_ids(self, *, upstream: bool = False) -> set[str]:
        """Every task upstream (or downstream) of this one, directly or not."""
        found: set[str] = set()
        stack = self.get_direct_relatives(upstream)
        while stack:
            task = stack.pop()
            if task.task_id not in found:
                found.add(task.task_id)
                stack.extend(task.get_direct_relatives(upstream))
        return found

    def get_flat_relatives(self, upstream: bool = False) -> list[BaseOperator]:
        """The tasks of ``get_flat_relative_ids``, in the DAG's order."""
        ids = self.get_flat_relative_ids(upstream=upstream)
        return [t for t in _dag_order(self) if t.task_id in ids]

    @property
    def output(self) -> XComArg:
        """The task's ``return_value`` as an XComArg (Airflow's ``BaseOperator.output``)."""
        return XComArg(self)

    @property
    def log(self) -> Any:
        """The task's logger (``airflow.task.operators.<module>.<class>``), printing INFO and above."""
        return task_logger(f"airflow.task.operators.{type(self).__module__}.{type(self).__name__}")

    # -- running ---------------------------------------------------------------------------------

    def execute(self, context: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define execute()")

    def pre_execute(self, context: Any) -> None:
        """Runs right before ``execute`` (override it)."""

    def post_execute(self, context: Any, result: Any = None) -> None:
        """Runs right after ``execute`` (override it). Airflow 3 calls it with the context only."""

    def on_kill(self) -> None:
        """Called when the task is killed (kdag: never; the pod is deleted)."""

    def defer(self, **kwargs: Any) -> None:
        raise AirflowException(
            f"task '{self.task_id}': kdag does not run deferrable operators"
            " (defer() needs Airflow's triggerer)"
        )

    def xcom_push(self, context: Mapping[str, Any], key: str, value: Any) -> None:
        """Airflow's ``BaseOperator.xcom_push(context, key, value)``."""
        context["ti"].xcom_push(key=key, value=value)

    def xcom_pull(self, context: Mapping[str, Any], task_ids: Any = None, **kwargs: Any) -> Any:
        """Airflow's ``BaseOperator.xcom_pull(context, task_ids, ...)``."""
        return context["ti"].xcom_pull(task_ids=task_ids, **kwargs)

    def run_callbacks(self, kind: str, context: Mapping[str, Any]) -> None:
        """Call each callback of ``kind`` (``on_success_callback``, ...) with the context; a callback that
        raises is logged and the others still run, as in Airflow."""
        for index, callback in enumerate(getattr(self, kind, None) or ()):
            try:
                callback(context)
            except Exception:
                import traceback

                print(f"Failed to run task callback kind={kind} index={index}", file=sys.stderr)
                traceback.print_exc()

    def push_result(self, ti: Any, result: Any) -> None:
        """Push what ``execute`` returned, as Airflow's task runner does after a success."""
        for dependant in self.downstream_list:
            # A mapped task (or task group) downstream refuses a value it cannot expand over (mapping.py).
            for mapped in (dependant, closest_mapped_group(dependant)):
                check = getattr(mapped, "check_mapped_upstream", None)
                if check is not None:
                    check(self, result if self.do_xcom_push else None, ti)
        if not self.do_xcom_push or result is None:
            return
        if self.multiple_outputs:
            if not isinstance(result, dict):
                kind = type(result).__name__
                raise TypeError(f"task '{self.task_id}': multiple_outputs needs a dict result, got {kind}")
            for key in result:
                if not isinstance(key, str):
                    raise TypeError(
                        f"task '{self.task_id}': returned dictionary keys must be strings when using "
                        f"multiple_outputs, found {key!r} ({type(key).__name__})"
                    )
            for key, value in result.items():
                ti.xcom_push(key, value)
        ti.push_return_value(result)

    def _set_xcomargs_dependencies(self) -> None:
        """An XComArg in a template field makes its task upstream of this one (Airflow)."""
        for name in self.template_fields:
            for arg in find_xcom_args(getattr(self, name, None)):
                self.set_upstream(arg)


def _dag_order(task: BaseOperator) -> list[BaseOperator]:
    """The tasks of the task's DAG in definition order (the task alone when it has no DAG)."""
    if task.dag is None:
        return [task]
    return [t for t in task.dag.tasks if isinstance(t, BaseOperator)]


def _definition_site(task: BaseOperator) -> tuple[str, int] | None:
    """File and line where the operator was made: the first frame outside kdag_runner that is not an
    ``__init__`` of the operator itself (a subclass's ``super().__init__`` call)."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        inside = filename.startswith(_PACKAGE_DIR + os.sep)
        own_init = frame.f_code.co_name == "__init__" and frame.f_locals.get("self") is task
        if not inside and not own_init:
            return filename, frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _as_tasks(subject: BaseOperator, other: object, upstream: bool = False) -> list[BaseOperator]:
    """The tasks ``other`` stands for on one side of ``subject``: a task group gives its leaves when it is
    upstream and its roots when downstream (Airflow's ``roots``/``leaves``); an edge label connects
    itself and gives none."""
    items: list[object] = list(other) if isinstance(other, list | tuple | set) else [other]
    tasks: list[BaseOperator] = []
    for item in items:
        if isinstance(item, XComArg):
            item = item.operator
        if isinstance(item, TaskGroup | EdgeModifier):
            item.update_relative(subject, upstream=not upstream)
            if isinstance(item, TaskGroup):
                for task in item.leaves if upstream else item.roots:
                    if isinstance(task, BaseOperator):
                        tasks.append(task)
            continue
        if not isinstance(item, BaseOperator):
            raise DagDefinitionError(
                f"task '{subject.task_id}': can depend only on tasks, got {type(item).__name__}"
            )
        tasks.append(item)
    return tasks


def _relate(upstream: BaseOperator, downstream: BaseOperator) -> None:
    """Add the edge upstream -> downstream, joining DAGs and refusing a cycle (named in full)."""
    if upstream.dag is not None and downstream.dag is not None and upstream.dag is not downstream.dag:
        raise DagDefinitionError(
            f"task '{downstream.task_id}': cannot depend on '{upstream.task_id}' of another DAG "
            f"('{downstream.dag.dag_id}' vs '{upstream.dag.dag_id}')"
        )
    path = _path(downstream, upstream)
    if path is not None:
        cycle = " -> ".join(t.task_id for t in [upstream, *path])
        raise DagDefinitionError(f"task '{downstream.task_id}': dependency creates a cycle: {cycle}")
    if upstream.dag is None and downstream.dag is not None:
        downstream.dag.add_task(upstream)
    elif downstream.dag is None and upstream.dag is not None:
        upstream.dag.add_task(downstream)
    upstream._downstream[downstream.task_id] = downstream
    downstream._upstream[upstream.task_id] = upstream


def _path(start: BaseOperator, goal: BaseOperator) -> list[BaseOperator] | None:
    """A downstream path start -> ... -> goal, or None."""
    came_from: dict[int, BaseOperator | None] = {id(start): None}
    queue = [start]
    while queue:
        task = queue.pop(0)
        if task is goal:
            path = [task]
            previous = came_from[id(task)]
            while previous is not None:
                path.append(previous)
                previous = came_from[id(previous)]
            return path[::-1]
        for child in task.downstream_list:
            if id(child) not in came_from:
                came_from[id(child)] = task
                queue.append(child)
    return None
