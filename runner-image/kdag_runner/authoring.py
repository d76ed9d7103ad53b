"""Airflow-compatible authoring classes: ``DAG``, ``PythonOperator``, ``BashOperator``, ``>>``.

Standard library only, so a DAG file runs unchanged inside a task pod. Definition mistakes raise
``DagDefinitionError`` with one line naming the task (or DAG) and the problem.
"""

from __future__ import annotations

import enum
import functools
import inspect
import itertools
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias, overload

# Airflow's KEY_REGEX and ID_LEN: the characters and length Airflow allows in dag and task ids.
ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
ID_MAX_LENGTH = 250


class DagDefinitionError(Exception):
    """A DAG file that cannot define a valid DAG; the message names the task or DAG."""


class AirflowException(Exception):
    """Airflow's base exception, raised by operators here too (a failed bash command)."""


class AirflowSkipException(AirflowException):
    """Raised to skip a task: the attempt ends Skipped (runner exit code 4) and is not retried."""


class AirflowFailException(AirflowException):
    """Raised to fail a task without retrying (kdag retries it like any failure)."""


class TriggerRule(enum.StrEnum):
    """Airflow's trigger rules; kdag runs all_success, all_done, one_success, one_failed, none_failed."""

    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    NONE_SKIPPED = "none_skipped"
    ALL_SKIPPED = "all_skipped"
    ALWAYS = "always"
    DUMMY = "dummy"


class Param:
    """A DAG or task param with a default (Airflow's ``Param``); its value is what tasks see."""

    def __init__(self, default: Any = None, description: str | None = None, **schema: Any) -> None:
        self.value = default
        self.description = description
        self.schema = schema

    def resolve(self) -> Any:
        return self.value

    def __repr__(self) -> str:
        return f"Param({self.value!r})"


def resolve_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return params as plain values (a ``Param`` becomes its default)."""
    return {k: v.value if isinstance(v, Param) else v for k, v in (params or {}).items()}


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
        self.params: dict[str, Any] = resolve_params(kwargs.pop("params", None))
        self.catchup: bool = bool(kwargs.pop("catchup", False))
        self.tags: list[str] = list(kwargs.pop("tags", None) or [])
        self.extra: dict[str, Any] = kwargs
        self.task_dict: dict[str, BaseOperator] = {}
        self.fileloc: str | None = None
        created_dags.append(self)

    @property
    def schedule_interval(self) -> Any:
        return self.schedule

    @property
    def tasks(self) -> list[BaseOperator]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    def __enter__(self) -> DAG:
        _active_dags.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _active_dags.remove(self)

    def __repr__(self) -> str:
        return f"<DAG: {self.dag_id}>"

    def add_task(self, task: BaseOperator) -> None:
        """Add ``task``; a second task with the same id is an error (Airflow's DuplicateTaskIdFound)."""
        existing = self.task_dict.get(task.task_id)
        if existing is task:
            return
        if existing is not None:
            raise DagDefinitionError(f"task '{task.task_id}': duplicate task_id in DAG '{self.dag_id}'")
        self.task_dict[task.task_id] = task
        task.dag = self

    def add_tasks(self, tasks: Iterable[BaseOperator]) -> None:
        for task in tasks:
            self.add_task(task)

    def get_task(self, task_id: str) -> BaseOperator:
        try:
            return self.task_dict[task_id]
        except KeyError:
            raise DagDefinitionError(f"task '{task_id}': not in DAG '{self.dag_id}'") from None

    def has_task(self, task_id: str) -> bool:
        return task_id in self.task_dict

    def topological_order(self) -> list[BaseOperator]:
        """Tasks with every task after its upstream tasks; ties in definition order."""
        pending = {t.task_id: len(t.upstream_task_ids) for t in self.tasks}
        ready = [t for t in self.tasks if pending[t.task_id] == 0]
        order: list[BaseOperator] = []
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
    # Airflow 1/2 only; accepted so older lessons load, and ignored.
    "provide_context": False,
}


class BaseOperator:
    """A task: its id, DAG, dependencies and the arguments kdag maps onto a TaskRun."""

    template_fields: Sequence[str] = ()

    def __init__(self, *, task_id: str, dag: DAG | None = None, **kwargs: Any) -> None:
        self.task_id = check_id("task", task_id)
        operator = type(self).__name__
        dag = dag if dag is not None else get_active_dag()
        if dag is not None and not isinstance(dag, DAG):
            raise DagDefinitionError(f"task '{task_id}': dag must be a DAG, got {type(dag).__name__}")
        defaults: dict[str, Any] = {}
        if dag is not None:
            defaults.update(dag.default_args)
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
        self.params: dict[str, Any] = resolve_params(values["params"])
        self.start_date: datetime | None = values["start_date"]
        self.do_xcom_push: bool = bool(values["do_xcom_push"])
        self.multiple_outputs: bool = bool(values["multiple_outputs"])
        self.options: dict[str, Any] = values
        self._upstream: dict[str, BaseOperator] = {}
        self._downstream: dict[str, BaseOperator] = {}
        self.dag: DAG | None = None
        if dag is not None:
            dag.add_task(self)

    def __repr__(self) -> str:
        return f"<Task({type(self).__name__}): {self.task_id}>"

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

    def set_upstream(self, other: TaskOrTasks) -> None:
        for task in _as_tasks(self, other):
            _relate(task, self)

    def set_downstream(self, other: TaskOrTasks) -> None:
        for task in _as_tasks(self, other):
            _relate(self, task)

    def __rshift__(self, other: TaskOrTasks) -> TaskOrTasks:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: TaskOrTasks) -> TaskOrTasks:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: TaskOrTasks) -> BaseOperator:
        """``[a, b] >> self``: lists have no ``>>``, so Python asks the right operand."""
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: TaskOrTasks) -> BaseOperator:
        self.set_downstream(other)
        return self

    # -- running ---------------------------------------------------------------------------------

    def execute(self, context: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define execute()")

    def push_result(self, ti: Any, result: Any) -> None:
        """Push what ``execute`` returned, as Airflow's task runner does after a success."""
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

    def render_template(self, field: str, value: Any, context: Mapping[str, Any]) -> Any:
        """Render Jinja in ``value`` (strings inside lists and dicts too), as Airflow's template_fields."""
        return _render(self.task_id, field, value, context)


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


def _as_tasks(subject: BaseOperator, other: object) -> list[BaseOperator]:
    items: list[object] = list(other) if isinstance(other, list | tuple | set) else [other]
    tasks: list[BaseOperator] = []
    for item in items:
        if isinstance(item, XComArg):
            item = item.operator
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


def chain(*tasks: TaskOrTasks) -> None:
    """``chain(a, [b, c], d)``: each element downstream of the previous; two lists pair up."""
    for left, right in itertools.pairwise(tasks):
        if isinstance(left, BaseOperator) or isinstance(right, BaseOperator):
            if isinstance(left, BaseOperator):
                left.set_downstream(right)
            else:
                for task in left:
                    task.set_downstream(right)
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


class PythonOperator(BaseOperator):
    """Calls ``python_callable(*op_args, **kwargs)`` where kwargs are the context plus ``op_kwargs``."""

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")

    def __init__(
        self,
        *,
        task_id: str,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: Mapping[str, Any] | None = None,
        templates_exts: Sequence[str] | None = None,
        show_return_value_in_logs: bool = True,
        **kwargs: Any,
    ) -> None:
        if not callable(python_callable):
            kind = type(python_callable).__name__
            raise DagDefinitionError(f"task '{task_id}': python_callable must be callable, got {kind}")
        if op_args is not None and not isinstance(op_args, list | tuple):
            kind = type(op_args).__name__
            raise DagDefinitionError(f"task '{task_id}': op_args must be a list, got {kind}")
        if op_kwargs is not None and not isinstance(op_kwargs, Mapping):
            raise DagDefinitionError(
                f"task '{task_id}': op_kwargs must be a dict, got {type(op_kwargs).__name__}"
            )
        super().__init__(task_id=task_id, **kwargs)
        self.python_callable = python_callable
        self.op_args: list[Any] = list(op_args or [])
        self.op_kwargs: dict[str, Any] = dict(op_kwargs or {})
        # An XComArg among the arguments makes its task upstream, as in Airflow.
        for arg in _xcom_args([self.op_args, self.op_kwargs]):
            self.set_upstream(arg.operator)
        self.templates_dict: dict[str, Any] | None = dict(templates_dict) if templates_dict else None
        self.show_return_value_in_logs = show_return_value_in_logs

    def execute(self, context: dict[str, Any]) -> Any:
        ti = context["ti"]
        op_args = self.render_template("op_args", _resolve(self.op_args, ti), context)
        op_kwargs = self.render_template("op_kwargs", _resolve(self.op_kwargs, ti), context)
        merged = dict(context)
        merged.update(op_kwargs)
        if self.templates_dict is not None:
            merged["templates_dict"] = self.render_template("templates_dict", self.templates_dict, context)
        kwargs = callable_kwargs(self.python_callable, op_args, merged)
        result = self.python_callable(*op_args, **kwargs)
        if self.show_return_value_in_logs:
            print(f"Done. Returned value was: {result}", flush=True)
        return result


def callable_kwargs(
    func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """The keyword arguments Airflow passes: all of them with ``**kwargs``, else only those named.

    As Airflow's ``KeywordParameters.determine``: a positional argument whose parameter name is also
    a context key is refused.
    """
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return dict(kwargs)
    names = list(signature.parameters)
    for name in names[: len(args)]:
        if name in kwargs:
            raise ValueError(f"The key '{name}' in args is a part of kwargs and therefore reserved.")
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return dict(kwargs)
    return {name: kwargs[name] for name in names if name in kwargs}


class BashOperator(BaseOperator):
    """Runs ``bash -c`` on the rendered command; the last line of output is its ``return_value``."""

    template_fields: Sequence[str] = ("bash_command", "env", "cwd")

    def __init__(
        self,
        *,
        task_id: str,
        bash_command: str,
        env: Mapping[str, str] | None = None,
        append_env: bool = False,
        output_encoding: str = "utf-8",
        skip_on_exit_code: int | Sequence[int] | None = 99,
        cwd: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(bash_command, str) or not bash_command.strip():
            raise DagDefinitionError(f"task '{task_id}': bash_command must be a non-empty string")
        if env is not None and not isinstance(env, Mapping):
            raise DagDefinitionError(f"task '{task_id}': env must be a dict, got {type(env).__name__}")
        super().__init__(task_id=task_id, **kwargs)
        self.bash_command = bash_command
        self.env: dict[str, str] | None = dict(env) if env is not None else None
        self.append_env = append_env
        self.output_encoding = output_encoding
        if skip_on_exit_code is None:
            self.skip_on_exit_code: list[int] = []
        elif isinstance(skip_on_exit_code, int):
            self.skip_on_exit_code = [skip_on_exit_code]
        else:
            self.skip_on_exit_code = list(skip_on_exit_code)
        self.cwd = cwd

    def execute(self, context: dict[str, Any]) -> Any:
        command = self.render_template("bash_command", self.bash_command, context)
        env = self._environment(context)
        cwd = self.render_template("cwd", self.cwd, context) if self.cwd else None
        with tempfile.TemporaryDirectory(prefix="kdag-bash-") as scratch:
            exit_code, last_line = self._run(command, env, cwd or scratch)
        if exit_code in self.skip_on_exit_code:
            raise AirflowSkipException(f"Bash command returned exit code {exit_code}. Skipping.")
        if exit_code != 0:
            raise AirflowException(
                f"Bash command failed. The command returned a non-zero exit code {exit_code}."
            )
        return last_line

    def _environment(self, context: Mapping[str, Any]) -> dict[str, str]:
        if self.env is None:
            env = dict(os.environ)
        else:
            env = {str(k): str(v) for k, v in self.render_template("env", self.env, context).items()}
            if self.append_env:
                env = {**os.environ, **env}
        env.update(airflow_context_vars(context))
        return env

    def _run(self, command: str, env: dict[str, str], cwd: str) -> tuple[int, str]:
        """Run bash with stderr merged into stdout, echoing each line; return exit code and last line."""
        process = subprocess.Popen(
            ["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
        last_line = ""
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            last_line = raw.decode(self.output_encoding, errors="backslashreplace").rstrip()
            print(last_line, flush=True)
        return process.wait(), last_line


def airflow_context_vars(context: Mapping[str, Any]) -> dict[str, str]:
    """The ``AIRFLOW_CTX_*`` variables Airflow exports to a task's environment."""
    found = {
        "AIRFLOW_CTX_DAG_ID": context.get("dag_id"),
        "AIRFLOW_CTX_TASK_ID": context.get("task_id"),
        "AIRFLOW_CTX_DAG_RUN_ID": context.get("run_id"),
        "AIRFLOW_CTX_LOGICAL_DATE": context.get("ts"),
    }
    ti = context.get("ti")
    if ti is not None:
        found["AIRFLOW_CTX_TRY_NUMBER"] = str(getattr(ti, "try_number", 1))
    return {k: str(v) for k, v in found.items() if v is not None}


_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def _render(task_id: str, field: str, value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        if not any(marker in value for marker in _TEMPLATE_MARKERS):
            return value
        return _render_string(task_id, field, value, context)
    if isinstance(value, list | tuple):
        return type(value)(_render(task_id, field, v, context) for v in value)
    if isinstance(value, dict):
        return {k: _render(task_id, field, v, context) for k, v in value.items()}
    return value


def _render_string(task_id: str, field: str, text: str, context: Mapping[str, Any]) -> str:
    try:
        import jinja2
    except ImportError:
        raise DagDefinitionError(
            f"task '{task_id}': {field} is a Jinja template but jinja2 is not installed (pip install jinja2)"
        ) from None
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.do"])
    try:
        template = environment.from_string(text)
        return template.render({**context, "macros": _macros()})
    except jinja2.TemplateError as err:
        raise AirflowException(f"task '{task_id}': rendering {field} failed: {err}") from err


def _macros() -> Any:
    """The common part of Airflow's ``macros``: datetime helpers, json, uuid, random."""
    import json
    import random
    import time
    import types
    import uuid

    def ds_add(ds: str, days: int) -> str:
        return (datetime.strptime(ds, "%Y-%m-%d") + timedelta(days=days)).strftime("%Y-%m-%d")

    def ds_format(ds: str, input_format: str, output_format: str) -> str:
        return datetime.strptime(ds, input_format).strftime(output_format)

    return types.SimpleNamespace(
        datetime=datetime,
        timedelta=timedelta,
        json=json,
        time=time,
        uuid=uuid,
        random=random.random,
        ds_add=ds_add,
        ds_format=ds_format,
    )


class XComArg:
    """What calling a ``@task`` function gives: an XCom of that task, pulled when a downstream task runs."""

    def __init__(self, operator: BaseOperator, key: str = "return_value") -> None:
        self.operator = operator
        self.key = key

    def __getitem__(self, key: str) -> XComArg:
        return XComArg(self.operator, key)

    def __repr__(self) -> str:
        return f"XComArg({self.operator.task_id!r}, {self.key!r})"

    def resolve(self, ti: Any) -> Any:
        return ti.xcom_pull(task_ids=self.operator.task_id, key=self.key)

    def __rshift__(self, other: TaskOrTasks | XComArg) -> Any:
        return self.operator >> _operator_of(other)

    def __lshift__(self, other: TaskOrTasks | XComArg) -> Any:
        return self.operator << _operator_of(other)

    def __rrshift__(self, other: TaskOrTasks) -> XComArg:
        self.operator.set_upstream(other)
        return self

    def __rlshift__(self, other: TaskOrTasks) -> XComArg:
        self.operator.set_downstream(other)
        return self


def _operator_of(value: Any) -> Any:
    if isinstance(value, XComArg):
        return value.operator
    if isinstance(value, list | tuple):
        return [_operator_of(v) for v in value]
    return value


def _xcom_args(value: Any) -> list[XComArg]:
    if isinstance(value, XComArg):
        return [value]
    if isinstance(value, list | tuple | set):
        return [arg for item in value for arg in _xcom_args(item)]
    if isinstance(value, dict):
        return [arg for item in value.values() for arg in _xcom_args(item)]
    return []


def _resolve(value: Any, ti: Any) -> Any:
    """Replace XComArgs (inside lists and dicts too) by the values their tasks pushed."""
    if isinstance(value, XComArg):
        return value.resolve(ti)
    if isinstance(value, list | tuple):
        return type(value)(_resolve(v, ti) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v, ti) for k, v in value.items()}
    return value


class _TaskFunction:
    """A function decorated with ``@task``: each call adds a PythonOperator and returns its XComArg."""

    def __init__(self, function: Callable[..., Any], options: dict[str, Any]) -> None:
        if not callable(function):
            raise DagDefinitionError(f"@task: needs a function, got {type(function).__name__}")
        self.function = function
        self.options = options
        functools.update_wrapper(self, function)

    def override(self, **options: Any) -> _TaskFunction:
        return _TaskFunction(self.function, {**self.options, **options})

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        options = dict(self.options)
        task_id = options.pop("task_id", None) or self.function.__name__
        dag = options.get("dag") or get_active_dag()
        if dag is not None and task_id in dag.task_dict:
            # Airflow numbers the repeated calls of one task function: name, name__1, name__2, ...
            base, number = task_id, 1
            while f"{base}__{number}" in dag.task_dict:
                number += 1
            task_id = f"{base}__{number}"
        if options.get("multiple_outputs") is None:
            options["multiple_outputs"] = _returns_dict(self.function)
        operator = PythonOperator(
            task_id=task_id, python_callable=self.function, op_args=args, op_kwargs=kwargs, **options
        )
        return XComArg(operator)


def _returns_dict(function: Callable[..., Any]) -> bool:
    """Airflow infers ``multiple_outputs`` from a ``dict`` return annotation."""
    try:
        annotation = inspect.signature(function).return_annotation
    except (TypeError, ValueError):
        return False
    if isinstance(annotation, str):
        return annotation.replace(" ", "").split("[")[0] in {"dict", "Dict", "typing.Dict"}
    return annotation is dict or getattr(annotation, "__origin__", None) is dict


@overload
def task(python_callable: Callable[..., Any], **options: Any) -> _TaskFunction: ...


@overload
def task(python_callable: None = None, **options: Any) -> Callable[[Callable[..., Any]], _TaskFunction]: ...


def task(
    python_callable: Callable[..., Any] | None = None, **options: Any
) -> _TaskFunction | Callable[[Callable[..., Any]], _TaskFunction]:
    """Airflow's ``@task`` / ``@task(...)``: the function becomes a PythonOperator factory."""
    if python_callable is not None:
        return _TaskFunction(python_callable, options)
    return lambda function: _TaskFunction(function, options)


@overload
def dag(dag_id: Callable[..., Any], **dag_options: Any) -> Callable[..., DAG]: ...


@overload
def dag(
    dag_id: str | None = None, **dag_options: Any
) -> Callable[[Callable[..., Any]], Callable[..., DAG]]: ...


def dag(
    dag_id: str | Callable[..., Any] | None = None, **dag_options: Any
) -> Callable[..., DAG] | Callable[[Callable[..., Any]], Callable[..., DAG]]:
    """Airflow's ``@dag`` / ``@dag(...)``: calling the function builds the DAG named after it."""

    def decorate(function: Callable[..., Any]) -> Callable[..., DAG]:
        @functools.wraps(function)
        def build(*args: Any, **kwargs: Any) -> DAG:
            name = dag_id if isinstance(dag_id, str) else function.__name__
            with DAG(name, **dag_options) as built:
                function(*args, **kwargs)
            return built

        return build

    if callable(dag_id):
        return decorate(dag_id)
    return decorate
