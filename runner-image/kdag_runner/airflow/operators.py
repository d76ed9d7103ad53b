"""``BaseOperator``: the dependencies between tasks (``>>``, ``<<``, ``set_upstream``, ``chain``) and how
a task runs (``run_task``); ``EmptyOperator`` (``DummyOperator``).

How a task runs, as Airflow 3's task runner (``airflow.sdk.execution_time.task_runner``: ``_prepare``,
``_execute_task``, ``_run_task_and_map_outcome``, ``finalize``) does it: the ``template_fields`` are rendered
once, in place (``template_ext`` files read first); then the ``pre_execute=`` hook, an overridden
``pre_execute``, ``on_execute_callback``, ``execute``, the ``post_execute=`` hook (context and result), an
overridden ``post_execute`` (context only, as Airflow 3 calls it); then the result is pushed
(``return_value``, and each key with ``multiple_outputs``). ``DownstreamTasksSkipped`` (raised by
``SkipMixin``) ends the task successfully without pushing the result; ``AirflowSkipException`` skips it;
anything else fails it. Then one callback list runs with the context: ``on_success_callback``,
``on_skipped_callback``, ``on_retry_callback`` (a retry remains: ``ti.try_number <= ti.max_tries``) or
``on_failure_callback``, with ``context["exception"]`` set on a failure; a failing callback is logged, never
fails the task.

Subclasses defined in DAG files work as in Airflow: their ``__init__`` takes keyword arguments only, its
parameters default to the DAG's ``default_args``, and an ``XComArg`` in a template field makes its task
upstream (Airflow's ``BaseOperatorMeta``). This module imports ``dags.py`` and ``xcom_arg.py``, which see an
operator only through Protocols (``DagTask``, ``XComSource``), so there is no import cycle. Operators with an
``execute`` of their own live in their own modules (``python.py``, ``bash.py``, ``branching.py``).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeAlias

from kdag_runner.airflow import templating
from kdag_runner.airflow.dags import DAG, check_id, get_active_dag
from kdag_runner.airflow.dependencies import DependencyMixin
from kdag_runner.airflow.edges import EdgeModifier
from kdag_runner.airflow.exceptions import (
    AirflowException,
    AirflowRescheduleException,
    AirflowSkipException,
    DagDefinitionError,
    DownstreamTasksSkipped,
    never_retried,
)
from kdag_runner.airflow.groups import TaskGroup, group_of_new_task
from kdag_runner.airflow.params import ParamsDict, params_dict
from kdag_runner.airflow.trigger_rules import TriggerRule
from kdag_runner.airflow.xcom_arg import XComArg, find_xcom_args

TaskOrTasks: TypeAlias = "BaseOperator | Sequence[BaseOperator]"

# BaseOperator arguments and their defaults (Airflow 2 and 3); default_args may set any of them.
_BASE_DEFAULTS: dict[str, Any] = {
    "owner": "airflow",
    "email": None,
    "email_on_retry": True,
    "email_on_failure": True,
    "retries": 0,
    "retry_delay": timedelta(seconds=300),
    "retry_exponential_backoff": False,
    "max_retry_delay": None,
    "start_date": None,
    "end_date": None,
    "depends_on_past": False,
    "ignore_first_depends_on_past": True,
    "wait_for_past_depends_before_skipping": False,
    "wait_for_downstream": False,
    "params": None,
    "priority_weight": 1,
    "weight_rule": "downstream",
    "queue": "default",
    "pool": None,
    "pool_slots": 1,
    "sla": None,
    "execution_timeout": None,
    "on_execute_callback": None,
    "on_failure_callback": None,
    "on_success_callback": None,
    "on_retry_callback": None,
    "on_skipped_callback": None,
    "pre_execute": None,
    "post_execute": None,
    "trigger_rule": TriggerRule.ALL_SUCCESS,
    "resources": None,
    "run_as_user": None,
    "task_concurrency": None,
    "max_active_tis_per_dag": None,
    "max_active_tis_per_dagrun": None,
    "executor": None,
    "executor_config": None,
    "do_xcom_push": True,
    "multiple_outputs": False,
    "inlets": None,
    "outlets": None,
    "task_group": None,
    "doc": None,
    "doc_md": None,
    "doc_json": None,
    "doc_yaml": None,
    "doc_rst": None,
    "task_display_name": None,
    "logger_name": None,
    "allow_nested_operators": True,
    "map_index_template": None,
    "retry_policy": None,
    "render_template_as_native_obj": None,
    # Airflow 1/2 only; accepted so older lessons load, and ignored.
    "provide_context": False,
}

# Arguments kdag accepts but cannot honour, and why: a task that sets one (itself or through default_args)
# to anything but Airflow's default lists it in ``unhonoured_arguments``, and `kdag compile`/`apply`/`run
# --local` warn once per argument per DAG (docs/design.md, "Airflow semantics"). Arguments with no effect on
# how a task runs (owner, doc_md and the other docs, task_display_name, logger_name, ...) are not listed.
# ``executor_config`` is honoured: compile reads its KubernetesExecutor ``pod_override`` (image, resources,
# env of the container ``base``) and warns about the rest of it (kdag.compile.executor_config_fields).
UNHONOURED_ARGUMENTS: dict[str, str] = {
    "email": "kdag sends no e-mail (email_on_failure, email_on_retry)",
    "depends_on_past": "kdag runs never wait for earlier runs",
    "wait_for_downstream": "kdag runs never wait for earlier runs",
    "wait_for_past_depends_before_skipping": "kdag runs never wait for earlier runs",
    "end_date": "a task's own end_date is not read; the DAG's end_date ends its schedule",
    "priority_weight": "kdag starts every ready task at once: there is no queue to order",
    "weight_rule": "kdag starts every ready task at once: there is no queue to order",
    "queue": "kdag has no executor queues: every task is a pod",
    "pool": "kdag has no pools: every ready task starts at once (limit with a ResourceQuota)",
    "pool_slots": "kdag has no pools: every ready task starts at once (limit with a ResourceQuota)",
    "sla": "SLAs are not checked (Airflow 3 removed them too)",
    "resources": "Airflow's Resources are not read; set a task's `resources` in its DAG manifest",
    "run_as_user": "task pods run as user 65532",
    "task_concurrency": "kdag does not limit concurrent instances of a task",
    "max_active_tis_per_dag": "kdag does not limit concurrent instances of a task",
    "max_active_tis_per_dagrun": "kdag does not limit concurrent instances of a task",
    "executor": "every kdag task runs as a pod: there is no executor to choose",
    "inlets": "lineage (inlets, outlets) and asset events are not recorded",
    "outlets": "lineage (inlets, outlets) and asset events are not recorded",
    "retry_policy": "retry policies are not run: kdag retries by retries and retry_delay",
    "render_template_as_native_obj": "set on a task it is not read; set it on the DAG",
}
# Values that mean "Airflow's default" besides the one in _BASE_DEFAULTS.
_DEFAULT_LIKE: dict[str, tuple[Any, ...]] = {"pool": ("default_pool",), "inlets": ([],), "outlets": ([],)}
BASE_ARGUMENTS = frozenset(_BASE_DEFAULTS)
"""The arguments every operator takes (``BaseOperator``'s), which ``default_args`` may set."""

# ``Operator.partial(...)`` makes the arguments of a mapped task; ``mapping.py`` (which sits above this
# module: a MappedOperator is a BaseOperator) registers the factory when the package is imported.
_partial_factory: list[Callable[[type[BaseOperator], dict[str, Any]], Any]] = []


def register_partial(factory: Callable[[type[BaseOperator], dict[str, Any]], Any]) -> None:
    """Set what ``BaseOperator.partial`` returns (``mapping.operator_partial``)."""
    _partial_factory[:] = [factory]


_CALLBACKS = (
    "on_execute_callback",
    "on_failure_callback",
    "on_success_callback",
    "on_retry_callback",
    "on_skipped_callback",
)
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BaseOperator(DependencyMixin):
    """A task: its id, DAG, dependencies and the arguments kdag maps onto a TaskRun."""

    template_fields: Sequence[str] = ()
    template_ext: Sequence[str] = ()
    template_fields_renderers: ClassVar[dict[str, str]] = {}
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
            setattr(cls, "__init__", _apply_defaults(init))  # noqa: B010 (mypy refuses assigning a method)

    def __init__(self, *, task_id: str, dag: DAG | None = None, **kwargs: Any) -> None:
        check_id("task", task_id)
        dag, group = _dag_and_group(task_id, dag, kwargs.pop("task_group", None))
        if group is not None:
            task_id = group.child_id(task_id)  # ``group.task``, as Airflow prefixes ids (groups.py)
        self.task_id = check_id("task", task_id)
        self.definition_site: tuple[str, int] | None = _definition_site(self)
        operator = type(self).__name__
        defaults = _parent_defaults(dag, group)
        defaults.update(kwargs.pop("default_args", None) or {})
        unknown = sorted(set(kwargs) - set(_BASE_DEFAULTS))
        if unknown:
            raise DagDefinitionError(f"task '{task_id}': unknown argument '{unknown[0]}' for {operator}")
        values = {
            name: kwargs[name] if name in kwargs else defaults.get(name, default)
            for name, default in _BASE_DEFAULTS.items()
        }
        self.owner: str = values["owner"]
        self.retries: int = _non_negative_int(task_id, "retries", values["retries"])
        self.retry_delay: timedelta = _duration(task_id, "retry_delay", values["retry_delay"])
        self.retry_exponential_backoff: bool = bool(values["retry_exponential_backoff"])
        max_retry_delay = values["max_retry_delay"]
        self.max_retry_delay: timedelta | None = (
            None if max_retry_delay is None else _duration(task_id, "max_retry_delay", max_retry_delay)
        )
        timeout = values["execution_timeout"]
        self.execution_timeout: timedelta | None = (
            None if timeout is None else _duration(task_id, "execution_timeout", timeout)
        )
        rule = values["trigger_rule"]
        try:
            self.trigger_rule = TriggerRule(rule)
        except ValueError:
            allowed = ", ".join(r.value for r in TriggerRule)
            raise DagDefinitionError(
                f"task '{task_id}': trigger_rule {rule!r} is not one of {allowed}"
            ) from None
        self.params: ParamsDict = params_dict(values["params"])
        self.start_date: datetime | None = values["start_date"]
        self.do_xcom_push: bool = bool(values["do_xcom_push"])
        self.multiple_outputs: bool = bool(values["multiple_outputs"])
        self.options: dict[str, Any] = values
        given = set(kwargs) | set(defaults)
        self.unhonoured_arguments: dict[str, Any] = {
            name: values[name]
            for name in UNHONOURED_ARGUMENTS
            if name in given and not _is_default(name, values[name])
        }
        for name in _CALLBACKS:
            setattr(self, name, _callback_list(task_id, name, values[name]))
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
        # Airflow's `with setup >> teardown:` scopes; kdag sets no dependencies from a with block.
        raise DagDefinitionError(
            f"task '{self.task_id}': setup/teardown tasks as context managers (`with s >> t:`) are not"
            " supported by kdag; set the dependencies with >> and as_teardown(setups=...)"
        )

    def __exit__(self, *exc: object) -> None:
        return None





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
        return _task_logger(f"airflow.task.operators.{type(self).__module__}.{type(self).__name__}")

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
            # A mapped task downstream refuses a value it cannot expand over (mapping.py), as Airflow does.
            check = getattr(dependant, "check_mapped_upstream", None)
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

    # -- templates -------------------------------------------------------------------------------

    def get_template_env(self, dag: DAG | None = None) -> Any:
        """The DAG's Jinja environment (sandboxed unless the DAG renders native objects)."""
        return templating.template_env(dag or self.dag, task_id=self.task_id, field="a template")

    def prepare_template(self) -> None:
        """Runs after template files were read into the fields (override it to change their text)."""

    def resolve_template_files(self) -> None:
        """Read the template fields that name a ``template_ext`` file (from the DAG's folder or
        ``template_searchpath``) into the fields, then call ``prepare_template``; a file that cannot be read
        is left as its name (its rendering then fails naming it), as in Airflow."""
        if self.template_ext:
            extensions = tuple(self.template_ext)
            for name in self.template_fields:
                content = getattr(self, name, None)
                if isinstance(content, str) and content.endswith(extensions):
                    text = self._template_source(content)
                    if text is not None:
                        setattr(self, name, text)
                elif isinstance(content, list):
                    for index, item in enumerate(content):
                        if isinstance(item, str) and item.endswith(extensions):
                            text = self._template_source(item)
                            if text is not None:
                                content[index] = text
        self.prepare_template()

    def _template_source(self, name: str) -> str | None:
        for folder in templating.template_searchpath(self.dag):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as file:
                    return file.read()
        return None

    def render_template_fields(self, context: Mapping[str, Any], jinja_env: Any = None) -> None:
        """Render every template field in place, once (an XComArg becomes the value its task pushed, which
        is never rendered); the error of a field names the task and the field."""
        for name in self.template_fields:
            try:
                value = getattr(self, name)
            except AttributeError:
                raise AttributeError(
                    f"{name!r} is configured as a template field but {type(self).__name__} does not have "
                    "this attribute."
                ) from None
            if not _is_set(value):
                continue
            self.__dict__["_kdag_field"] = name
            try:
                if callable(value) and not isinstance(value, XComArg):
                    rendered = value(context=context, jinja_env=jinja_env)
                else:
                    rendered = self.render_template(value, context, jinja_env)
            finally:
                self.__dict__.pop("_kdag_field", None)
            setattr(self, name, rendered)
        self.__dict__["_kdag_rendered"] = True

    def render_template_fields_once(self, context: Mapping[str, Any]) -> None:
        """Render the template fields unless they were (``execute`` called without ``run_task``)."""
        if not self.__dict__.get("_kdag_rendered"):
            self.render_template_fields(context)

    def render_template(
        self,
        content: Any,
        context: Mapping[str, Any],
        jinja_env: Any = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        """Airflow's ``render_template``: strings rendered (a ``template_ext`` name is a template file),
        inside tuples, lists, dicts and sets too; an XComArg resolved, its value left as it is; an object
        with ``template_fields`` of its own rendered in place."""
        value = content
        oids = seen_oids if seen_oids is not None else set()
        if id(value) in oids:
            return value
        if isinstance(value, str):
            field = str(self.__dict__.get("_kdag_field", "a template"))
            return templating.render_text(
                value,
                context,
                task_id=self.task_id,
                field=field,
                dag=self.dag,
                template_ext=tuple(self.template_ext),
                environment=jinja_env,
            )
        if isinstance(value, XComArg):
            return value.resolve(context["ti"])
        if not isinstance(value, os.PathLike) and callable(getattr(value, "resolve", None)):
            return value.resolve(context)
        if value.__class__ is tuple:
            return tuple(self.render_template(v, context, jinja_env, oids) for v in value)
        if isinstance(value, tuple):  # a named tuple
            return value.__class__(*(self.render_template(v, context, jinja_env, oids) for v in value))
        if isinstance(value, list):
            return [self.render_template(v, context, jinja_env, oids) for v in value]
        if isinstance(value, dict):
            return {k: self.render_template(v, context, jinja_env, oids) for k, v in value.items()}
        if isinstance(value, set):
            return {self.render_template(v, context, jinja_env, oids) for v in value}
        nested = getattr(value, "template_fields", None)
        if nested is not None and id(value) not in oids:
            oids.add(id(value))
            for name in nested:
                inner = getattr(value, name)
                if _is_set(inner):
                    setattr(value, name, self.render_template(inner, context, jinja_env, oids))
        return value

    def _set_xcomargs_dependencies(self) -> None:
        """An XComArg in a template field makes its task upstream of this one (Airflow)."""
        for name in self.template_fields:
            for arg in find_xcom_args(getattr(self, name, None)):
                self.set_upstream(arg)


@dataclass(frozen=True)
class TaskOutcome:
    """How ``run_task`` ended: ``state`` is Airflow's (``success``, ``skipped``, ``up_for_retry``,
    ``failed``, ``up_for_reschedule`` with the ``AirflowRescheduleException``); ``skip_tasks`` the tasks a
    successful task asked to skip (``DownstreamTasksSkipped``)."""

    state: str
    error: BaseException | None = None
    skip_tasks: tuple[str, ...] = ()


SUCCESS = "success"
SKIPPED = "skipped"
UP_FOR_RETRY = "up_for_retry"
FAILED = "failed"
UP_FOR_RESCHEDULE = "up_for_reschedule"


def run_task(
    task: BaseOperator,
    context: dict[str, Any],
    on_error: Callable[[BaseException], None] | None = None,
) -> TaskOutcome:
    """Run ``task`` as Airflow's task runner does (see the module docstring) and return how it ended.

    ``on_error`` is told of a failure before the failure callbacks run (so logs read in Airflow's order).
    """
    ti = context["ti"]
    outcome: TaskOutcome
    try:
        task.resolve_template_files()
        task.render_template_fields(context)
        if task._pre_execute_hook is not None:
            task._pre_execute_hook(context)
        if _overrides(task, "pre_execute"):
            task.pre_execute(context)
        task.run_callbacks("on_execute_callback", context)
        result = task.execute(context)
        if task._post_execute_hook is not None:
            task._post_execute_hook(context, result)
        if _overrides(task, "post_execute"):
            task.post_execute(context)
        task.push_result(ti, result)
        outcome = TaskOutcome(SUCCESS)
    except DownstreamTasksSkipped as skip:
        outcome = TaskOutcome(SUCCESS, skip_tasks=skipped_task_ids(skip.tasks))
    except AirflowSkipException as err:
        outcome = TaskOutcome(SKIPPED, error=err)
    except AirflowRescheduleException as err:
        # A sensor not done yet (sensors.py): no callbacks run, as in Airflow's task runner.
        return TaskOutcome(UP_FOR_RESCHEDULE, error=err)
    except BaseException as err:
        if on_error is not None:
            on_error(err)
        # A fail exception or a sensor's timeout fails the task without a retry, as in Airflow.
        retry = not never_retried(err) and getattr(ti, "try_number", 1) <= getattr(ti, "max_tries", 0)
        outcome = TaskOutcome(UP_FOR_RETRY if retry else FAILED, error=err)
        context["exception"] = err
    kind = {
        SUCCESS: "on_success_callback",
        SKIPPED: "on_skipped_callback",
        UP_FOR_RETRY: "on_retry_callback",
        FAILED: "on_failure_callback",
    }[outcome.state]
    task.run_callbacks(kind, context)
    return outcome


def skipped_task_ids(tasks: object) -> tuple[str, ...]:
    """The task ids of ``DownstreamTasksSkipped.tasks``: ids, or (id, map_index) pairs, in order."""
    items = tasks if isinstance(tasks, list | tuple) else [tasks]
    ids = (item[0] if isinstance(item, tuple) and item else item for item in items)
    return tuple(dict.fromkeys(str(i) for i in ids))


def _overrides(task: BaseOperator, method: str) -> bool:
    return getattr(type(task), method, None) is not getattr(BaseOperator, method)


def _is_set(value: Any) -> bool:
    """Airflow renders only template fields whose value is truthy (or cannot say)."""
    try:
        return bool(value)
    except Exception:
        return True


def _callback_list(task_id: str, name: str, value: object) -> list[Callable[..., Any]]:
    """A callback argument as Airflow keeps it: a list (None: empty; one callable: a list of it)."""
    if not value:
        return []
    items: list[Any] = list(value) if isinstance(value, Collection) and not callable(value) else [value]
    for item in items:
        if not callable(item):
            raise DagDefinitionError(
                f"task '{task_id}': {name} must be a callable or a list of callables,"
                f" got {type(item).__name__}"
            )
    return items


def _dag_order(task: BaseOperator) -> list[BaseOperator]:
    """The tasks of the task's DAG in definition order (the task alone when it has no DAG)."""
    if task.dag is None:
        return [task]
    return [t for t in task.dag.tasks if isinstance(t, BaseOperator)]


_loggers: dict[str, Any] = {}


def _task_logger(name: str) -> Any:
    """A logger under ``airflow.task`` that prints INFO and above to stderr (logging is imported here,
    on first use, so the runner starts without it)."""
    logger = _loggers.get(name)
    if logger is None:
        import logging

        class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
            """Writes to the sys.stderr of the moment (tests swap it)."""

            @property
            def stream(self) -> Any:
                return sys.stderr

            @stream.setter
            def stream(self, value: Any) -> None:
                pass

        root = logging.getLogger("airflow.task")
        if not root.handlers:
            handler = StderrHandler()
            handler.setFormatter(
                logging.Formatter("[%(asctime)s] {%(filename)s:%(lineno)d} %(levelname)s - %(message)s")
            )
            root.addHandler(handler)
            root.setLevel(logging.INFO)
            root.propagate = False
        logger = _loggers[name] = logging.getLogger(name)
    return logger


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


def _apply_defaults(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a subclass's ``__init__`` as Airflow's ``BaseOperatorMeta`` does: keyword arguments only, its
    own parameters default to ``default_args`` (the DAG's, then the task's), and once the outermost
    ``__init__`` returns, XComArgs in template fields make their tasks upstream."""
    try:
        parameters = inspect.signature(init).parameters.values()
    except (TypeError, ValueError):
        parameters = []  # type: ignore[assignment]
    names = [
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in ("self", "task_id", "dag", "default_args")
        and p.name not in _BASE_DEFAULTS
    ]

    @functools.wraps(init)
    def apply_defaults(self: BaseOperator, *args: Any, **kwargs: Any) -> None:
        if args:
            raise DagDefinitionError(
                f"task '{kwargs.get('task_id', '?')}': {type(self).__name__} takes keyword arguments only"
                " (use keyword arguments when initializing operators)"
            )
        if names:
            task_id = str(kwargs.get("task_id"))
            dag, group = _dag_and_group(task_id, kwargs.get("dag"), kwargs.get("task_group"))
            defaults = _parent_defaults(dag, group)
            defaults.update(kwargs.get("default_args") or {})
            for name in names:
                if name not in kwargs and name in defaults:
                    kwargs[name] = defaults[name]
        outermost = "_kdag_initialising" not in self.__dict__
        self.__dict__["_kdag_initialising"] = True
        try:
            init(self, **kwargs)
        finally:
            if outermost:
                del self.__dict__["_kdag_initialising"]
        if outermost:
            self._set_xcomargs_dependencies()

    apply_defaults._kdag_applies_defaults = True  # type: ignore[attr-defined]
    return apply_defaults


def _is_default(name: str, value: Any) -> bool:
    """Whether ``value`` is Airflow's default for argument ``name`` (so setting it changes nothing)."""
    if value is None:
        return True
    try:
        return any(value == default for default in (_BASE_DEFAULTS[name], *_DEFAULT_LIKE.get(name, ())))
    except Exception:  # an object whose == raises is not a default
        return False


def _non_negative_int(task_id: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DagDefinitionError(f"task '{task_id}': {name} must be a non-negative integer, got {value!r}")
    return value


def _duration(task_id: str, name: str, value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    raise DagDefinitionError(f"task '{task_id}': {name} must be a timedelta or seconds, got {value!r}")


def _dag_and_group(task_id: str, dag: Any, task_group: Any) -> tuple[DAG | None, TaskGroup | None]:
    """The DAG (``dag=``, else the active one, else the group's) and task group (``task_group=``, else the
    current ``with TaskGroup``, else the DAG's root group) of a task being made."""
    dag = dag if dag is not None else get_active_dag()
    if dag is not None and not isinstance(dag, DAG):
        raise DagDefinitionError(f"task '{task_id}': dag must be a DAG, got {type(dag).__name__}")
    try:
        group = group_of_new_task(dag, task_group)
    except DagDefinitionError as err:
        raise DagDefinitionError(f"task '{task_id}': {err}") from None
    if group is not None and dag is None:
        dag = group.dag if isinstance(group.dag, DAG) else None
    if group is not None and group.dag is not dag:
        raise DagDefinitionError(f"task '{task_id}': its task group belongs to another DAG")
    return dag, group


def _parent_defaults(dag: DAG | None, group: TaskGroup | None) -> dict[str, Any]:
    """default_args a task inherits: the DAG's, overridden by its task group's (nested groups merged)."""
    defaults: dict[str, Any] = dict(dag.default_args) if dag is not None else {}
    if group is not None:
        defaults.update(group.default_args)
    return defaults


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


class EmptyOperator(BaseOperator):
    """A task that does nothing (Airflow's EmptyOperator, formerly DummyOperator)."""

    def execute(self, context: dict[str, Any]) -> Any:
        return None


DummyOperator = EmptyOperator
