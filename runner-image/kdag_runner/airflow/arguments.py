"""The arguments every operator takes (``BaseOperator``'s): their defaults, ``default_args``, the checks.

A task's argument is what it was given, else what ``default_args`` say (the DAG's, overridden by its task
group's, overridden by the task's own ``default_args=``), else Airflow's default. The arguments of a
subclass's own ``__init__`` default to ``default_args`` too, as Airflow's ``BaseOperatorMeta`` makes them
(``apply_defaults``). Arguments kdag accepts but cannot honour are listed in ``UNHONOURED_ARGUMENTS``.

This module sits below ``operators.py`` and sees an operator only as the object being initialised.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection, Mapping
from datetime import timedelta
from typing import Any

from kdag_runner.airflow.dags import DAG, get_active_dag
from kdag_runner.airflow.exceptions import DagDefinitionError
from kdag_runner.airflow.groups import TaskGroup, group_of_new_task
from kdag_runner.airflow.trigger_rules import TriggerRule

# BaseOperator arguments and their defaults (Airflow 2 and 3); default_args may set any of them.
BASE_DEFAULTS: dict[str, Any] = {
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
# Values that mean "Airflow's default" besides the one in BASE_DEFAULTS.
_DEFAULT_LIKE: dict[str, tuple[Any, ...]] = {"pool": ("default_pool",), "inlets": ([],), "outlets": ([],)}
BASE_ARGUMENTS = frozenset(BASE_DEFAULTS)
"""The arguments every operator takes (``BaseOperator``'s), which ``default_args`` may set."""

CALLBACKS = (
    "on_execute_callback",
    "on_failure_callback",
    "on_success_callback",
    "on_retry_callback",
    "on_skipped_callback",
)


def argument_values(
    task_id: str, operator: str, kwargs: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """Every base argument's value: given, else from ``defaults`` (the merged default_args), else
    Airflow's default; an argument ``operator`` does not take is refused."""
    unknown = sorted(set(kwargs) - BASE_ARGUMENTS)
    if unknown:
        raise DagDefinitionError(f"task '{task_id}': unknown argument '{unknown[0]}' for {operator}")
    return {
        name: kwargs[name] if name in kwargs else defaults.get(name, default)
        for name, default in BASE_DEFAULTS.items()
    }


def unhonoured(values: Mapping[str, Any], given: Collection[str]) -> dict[str, Any]:
    """The arguments of ``UNHONOURED_ARGUMENTS`` that were ``given`` a value other than Airflow's default."""
    return {
        name: values[name]
        for name in UNHONOURED_ARGUMENTS
        if name in given and not _is_default(name, values[name])
    }


def _is_default(name: str, value: Any) -> bool:
    """Whether ``value`` is Airflow's default for argument ``name`` (so setting it changes nothing)."""
    if value is None:
        return True
    try:
        return any(value == default for default in (BASE_DEFAULTS[name], *_DEFAULT_LIKE.get(name, ())))
    except Exception:  # an object whose == raises is not a default
        return False


def trigger_rule(task_id: str, rule: Any) -> TriggerRule:
    """``rule`` as a ``TriggerRule`` (its value or the member), or an error listing the rules."""
    try:
        return TriggerRule(rule)
    except ValueError:
        allowed = ", ".join(r.value for r in TriggerRule)
        raise DagDefinitionError(f"task '{task_id}': trigger_rule {rule!r} is not one of {allowed}") from None


def non_negative_int(task_id: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DagDefinitionError(f"task '{task_id}': {name} must be a non-negative integer, got {value!r}")
    return value


def duration(task_id: str, name: str, value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    raise DagDefinitionError(f"task '{task_id}': {name} must be a timedelta or seconds, got {value!r}")


def callback_list(task_id: str, name: str, value: object) -> list[Callable[..., Any]]:
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


def dag_and_group(task_id: str, dag: Any, task_group: Any) -> tuple[DAG | None, TaskGroup | None]:
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


def parent_defaults(dag: DAG | None, group: TaskGroup | None) -> dict[str, Any]:
    """default_args a task inherits: the DAG's, overridden by its task group's (nested groups merged)."""
    defaults: dict[str, Any] = dict(dag.default_args) if dag is not None else {}
    if group is not None:
        defaults.update(group.default_args)
    return defaults


def apply_defaults(init: Callable[..., None]) -> Callable[..., None]:
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
        and p.name not in BASE_DEFAULTS
    ]

    @functools.wraps(init)
    def init_with_defaults(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:
            raise DagDefinitionError(
                f"task '{kwargs.get('task_id', '?')}': {type(self).__name__} takes keyword arguments only"
                " (use keyword arguments when initializing operators)"
            )
        if names:
            task_id = str(kwargs.get("task_id"))
            dag, group = dag_and_group(task_id, kwargs.get("dag"), kwargs.get("task_group"))
            defaults = parent_defaults(dag, group)
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

    init_with_defaults._kdag_applies_defaults = True  # type: ignore[attr-defined]
    return init_with_defaults
