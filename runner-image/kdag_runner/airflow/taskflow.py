"""The TaskFlow API: ``@task`` (a function becomes an operator factory), ``@task.bash``, ``@setup``,
``@teardown`` and ``@dag``.

Each call of a decorated function adds one operator to the active DAG (and task group) and returns its
``XComArg``; calling it again in the same DAG numbers the id (``name__1``, ...), as Airflow does.
``multiple_outputs`` defaults to whether the return annotation is a mapping (``-> dict[str, int]``).
``@task.bash``: the function returns the command a BashOperator then renders and runs. ``@setup`` and
``@teardown`` mark the tasks (a teardown's rule is ``all_done_setup_success`` and cannot be changed).
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

from kdag_runner.airflow import mapping, mapping_checks
from kdag_runner.airflow.bash import BashOperator
from kdag_runner.airflow.branching import BranchPythonOperator, ShortCircuitOperator
from kdag_runner.airflow.dags import DAG, get_active_dag
from kdag_runner.airflow.exceptions import DagDefinitionError
from kdag_runner.airflow.expand_input import DictOfListsExpandInput, ExpandInput, ListOfDictsExpandInput
from kdag_runner.airflow.group_decorator import TaskGroupFunction
from kdag_runner.airflow.groups import TaskGroup, group_of_new_task
from kdag_runner.airflow.python import PythonOperator, callable_kwargs
from kdag_runner.airflow.sensors import DecoratedSensorOperator
from kdag_runner.airflow.trigger_rules import TriggerRule
from kdag_runner.airflow.xcom_arg import XComArg

_SET_DURING_EXECUTION = "kdag: @task.bash sets the command when the task runs"


class BashTaskOperator(BashOperator):
    """The operator of ``@task.bash``: calls the function (``op_args``/``op_kwargs`` rendered first, context
    keys it names passed), renders the command it returns and runs it as a BashOperator does
    (``output_processor``, ``multiple_outputs``, ``skip_on_exit_code``, ``env``, ``cwd`` as there)."""

    template_fields: Sequence[str] = ("op_args", "op_kwargs", *BashOperator.template_fields)

    def __init__(
        self,
        *,
        task_id: str,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id=task_id, bash_command=_SET_DURING_EXECUTION, **kwargs)
        self.python_callable = python_callable
        self.op_args: list[Any] = list(op_args or [])
        self.op_kwargs: dict[str, Any] = dict(op_kwargs or {})

    def execute(self, context: dict[str, Any]) -> Any:
        self.render_template_fields_once(context)
        merged = dict(context)
        merged.update(self.op_kwargs)
        kwargs = callable_kwargs(self.python_callable, self.op_args, merged)
        command = self.python_callable(*self.op_args, **kwargs)
        if not isinstance(command, str) or not command.strip():
            raise TypeError("The returned value from the TaskFlow callable must be a non-empty string.")
        self.bash_command = command
        # The command the function returned is a template, as in Airflow's _BashDecoratedOperator. Airflow
        # renders every template field again there; kdag only the command: the others were rendered, and
        # would now render what they hold (an upstream XCom, a param) as a template.
        self.render_fields(("bash_command",), context)
        return super().execute(context)


_OperatorClass: typing.TypeAlias = (
    type[PythonOperator] | type[BashTaskOperator] | type[DecoratedSensorOperator]
)
"""The operators a decorated function makes (branching's are PythonOperators)."""


class _TaskFunction:
    """A decorated function: each call adds an operator (``operator_class``) and returns its XComArg."""

    def __init__(
        self,
        function: Callable[..., Any],
        options: dict[str, Any],
        operator_class: _OperatorClass = PythonOperator,
        decorator_name: str = "task",
    ) -> None:
        if not callable(function):
            raise DagDefinitionError(f"@{decorator_name}: needs a function, got {type(function).__name__}")
        self.function = function
        self.options = options
        self.operator_class = operator_class
        self.decorator_name = decorator_name
        self.is_setup = False
        self.is_teardown = False
        self.on_failure_fail_dagrun = False
        self.partial_kwargs: dict[str, Any] = {}
        """Arguments of the function every instance of a mapped task gets (``partial``)."""
        chosen = options.get("multiple_outputs")
        self.multiple_outputs = _returns_mapping(function) if chosen is None else bool(chosen)
        functools.update_wrapper(self, function)

    def override(self, **options: Any) -> _TaskFunction:
        """The same function with other operator arguments (``task_id=``, ``retries=``, ...)."""
        other = _TaskFunction(
            self.function, {**self.options, **options}, self.operator_class, self.decorator_name
        )
        other.is_setup = self.is_setup
        other.is_teardown = self.is_teardown
        other.on_failure_fail_dagrun = self.on_failure_fail_dagrun
        other.partial_kwargs = dict(self.partial_kwargs)
        return other

    def _operator_options(self) -> tuple[dict[str, Any], str, bool]:
        """The operator's arguments, its unique task id and `on_failure_fail_dagrun`, for a call and a
        mapped call alike."""
        options = dict(self.options)
        if self.is_teardown:
            if "trigger_rule" in options:
                raise DagDefinitionError(
                    f"@teardown '{self.function.__name__}': trigger rule not configurable for teardown tasks"
                )
            options["trigger_rule"] = TriggerRule.ALL_DONE_SETUP_SUCCESS
        fail_dagrun = options.pop("on_failure_fail_dagrun", self.on_failure_fail_dagrun)
        label = options.pop("task_id", None) or self.function.__name__
        task_id = _unique_task_id(label, options.get("dag"), options.get("task_group"))
        if options.get("multiple_outputs") is None:
            options["multiple_outputs"] = self.multiple_outputs
        return options, task_id, bool(fail_dagrun)

    def _output(self, operator: Any, fail_dagrun: bool) -> XComArg:
        """The new operator marked setup/teardown as the decorator says; its XComArg."""
        operator.is_setup = self.is_setup
        operator.is_teardown = self.is_teardown
        operator.on_failure_fail_dagrun = fail_dagrun
        return XComArg(operator)

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        options, task_id, fail_dagrun = self._operator_options()
        operator = self.operator_class(
            task_id=task_id, python_callable=self.function, op_args=args, op_kwargs=kwargs, **options
        )
        return self._output(operator, fail_dagrun)

    # -- dynamic task mapping (mapping.py) -------------------------------------------------------

    def partial(self, **kwargs: Any) -> _TaskFunction:
        """Airflow's ``fn.partial(**kwargs)``: arguments of the function every mapped instance shares."""
        mapping_checks.check_function_arguments(self.function, "partial", kwargs)
        duplicated = sorted(set(self.partial_kwargs) & set(kwargs))
        if duplicated:
            raise mapping_checks.MappingError(f"duplicate partial argument: {', '.join(duplicated)}")
        other = self.override()
        other.partial_kwargs.update(kwargs)
        return other

    def expand(self, **mapped: Any) -> XComArg:
        """Airflow's ``fn.expand(**mapped)``: one instance per combination of the mapped arguments' elements
        (a list's items, a dict's (key, value) pairs, an upstream XCom's)."""
        if not mapped:
            name = f"@{self.decorator_name} '{self.function.__name__}'"
            raise mapping_checks.MappingError(f"{name}: no arguments to expand against")
        mapping_checks.check_function_arguments(self.function, "expand", mapped)
        duplicated = sorted(set(self.partial_kwargs) & set(mapped))
        if duplicated:
            raise mapping_checks.MappingError(f"mapping already partial argument: {', '.join(duplicated)}")
        return self._mapped(DictOfListsExpandInput(mapped), strict=False)

    def expand_kwargs(self, kwargs: Any, *, strict: bool = True) -> XComArg:
        """Airflow's ``fn.expand_kwargs(list_or_xcomarg)``: one instance per dict of arguments."""
        mapping_checks.check_expand_kwargs(kwargs)
        return self._mapped(ListOfDictsExpandInput(kwargs), strict=strict)

    def _mapped(self, expand_input: ExpandInput, *, strict: bool) -> XComArg:
        options, task_id, fail_dagrun = self._operator_options()
        operator = mapping.mapped_task_function(
            function=self.function,
            operator_class=self.operator_class,
            task_id=task_id,
            options=options,
            partial_kwargs=self.partial_kwargs,
            expand_input=expand_input,
            strict=strict,
        )
        return self._output(operator, fail_dagrun)


def _unique_task_id(task_id: str, dag: DAG | None, group: TaskGroup | None) -> str:
    """Airflow's ``get_unique_task_id``: the id, or ``id__N`` (N one more than the highest taken) when the
    DAG has the id already (with its group's prefix)."""
    dag = dag if dag is not None else get_active_dag()
    if dag is None:
        return task_id
    group = group_of_new_task(dag, group)
    full = group.child_id(task_id) if group is not None else task_id
    if full not in dag.task_dict:
        return task_id
    numbered = re.compile(re.escape(re.sub(r"__\d+$", "", full)) + r"__(\d+)")
    taken = [int(m.group(1)) for tid in dag.task_dict if (m := numbered.fullmatch(tid))]
    core = re.sub(r"__\d+$", "", task_id)
    return f"{core}__{max(taken, default=0) + 1}"


def _returns_mapping(function: Callable[..., Any]) -> bool:
    """Airflow infers ``multiple_outputs`` from the return annotation: a Mapping type (``dict``,
    ``dict[str, int]``, a TypedDict ...); a name it cannot evaluate counts as not."""
    annotations = getattr(function, "__annotations__", None) or {}
    if "return" not in annotations:
        return False

    def fake() -> None: ...

    fake.__annotations__ = {"return": annotations["return"]}
    try:
        hint = typing.get_type_hints(fake, getattr(function, "__globals__", None)).get("return")
    except (NameError, TypeError, SyntaxError):
        return False
    origin = getattr(hint, "__origin__", hint)
    return isinstance(origin, type) and issubclass(origin, Mapping)


class UnsupportedDecorator(DagDefinitionError, AttributeError):
    """``@task.<name>`` kdag does not run: refused while the DAG file loads (``hasattr`` reads False)."""


class TaskDecorator:
    """``task``: ``@task``, ``@task(...)``, ``@task.python``, ``@task.bash``. (``task.branch`` and
    ``task.short_circuit`` are methods here too, added with branching.)"""

    @overload
    def __call__(self, python_callable: Callable[..., Any], **options: Any) -> _TaskFunction: ...

    @overload
    def __call__(
        self, python_callable: None = None, **options: Any
    ) -> Callable[[Callable[..., Any]], _TaskFunction]: ...

    def __call__(
        self, python_callable: Callable[..., Any] | None = None, **options: Any
    ) -> _TaskFunction | Callable[[Callable[..., Any]], _TaskFunction]:
        """Airflow's ``@task`` / ``@task(...)``: the function becomes a PythonOperator factory."""
        return _decorate(python_callable, options, PythonOperator, "task")

    python = __call__

    def bash(
        self, python_callable: Callable[..., Any] | None = None, **options: Any
    ) -> _TaskFunction | Callable[[Callable[..., Any]], _TaskFunction]:
        """Airflow's ``@task.bash``: the function returns the bash command to run."""
        return _decorate(python_callable, options, BashTaskOperator, "task.bash")

    def branch(
        self, python_callable: Callable[..., Any] | None = None, **options: Any
    ) -> _TaskFunction | Callable[[Callable[..., Any]], _TaskFunction]:
        """Airflow's ``@task.branch``: the function returns the task id(s) to follow."""
        return _decorate(python_callable, options, BranchPythonOperator, "task.branch")

    def short_circuit(
        self, python_callable: Callable[..., Any] | None = None, **options: Any
    ) -> _TaskFunction | Callable[[Callable[..., Any]], _TaskFunction]:
        """Airflow's ``@task.short_circuit``: a falsy result skips the tasks downstream."""
        return _decorate(python_callable, options, ShortCircuitOperator, "task.short_circuit")

    def sensor(
        self, python_callable: Callable[..., Any] | None = None, **options: Any
    ) -> _TaskFunction | Callable[[Callable[..., Any]], _TaskFunction]:
        """Airflow's ``@task.sensor``: the function is the poke (a bool, or a ``PokeReturnValue`` whose
        ``xcom_value`` is pushed); sensor arguments (``poke_interval``, ``mode``, ...) as options."""
        return _decorate(
            python_callable, {**options, "multiple_outputs": False}, DecoratedSensorOperator, "task.sensor"
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise UnsupportedDecorator(
            f"@task.{name}: not supported by kdag (it runs @task, @task.python and @task.bash,"
            " the branching decorators and @task.sensor)"
        )


def _decorate(
    python_callable: Callable[..., Any] | None,
    options: dict[str, Any],
    operator_class: _OperatorClass,
    name: str,
) -> _TaskFunction | Callable[[Callable[..., Any]], _TaskFunction]:
    if python_callable is not None:
        return _TaskFunction(python_callable, options, operator_class, name)
    return lambda function: _TaskFunction(function, options, operator_class, name)


task = TaskDecorator()


def _as_task_function(function: Any, decorator: str) -> _TaskFunction:
    if isinstance(function, TaskGroupFunction):
        raise DagDefinitionError(f"@{decorator}: task groups cannot be marked as setup or teardown")
    if isinstance(function, types.FunctionType):
        return _TaskFunction(function, {})
    if isinstance(function, _TaskFunction):
        return function
    kind = type(function).__name__
    raise DagDefinitionError(f"@{decorator}: needs a function or a @task function, got {kind}")


def setup(function: Any) -> _TaskFunction:
    """Airflow's ``@setup``: the function (or ``@task`` function) makes setup tasks."""
    decorated = _as_task_function(function, "setup")
    decorated.is_setup = True
    return decorated


@overload
def teardown(_func: Any, *, on_failure_fail_dagrun: bool = False) -> _TaskFunction: ...


@overload
def teardown(
    _func: None = None, *, on_failure_fail_dagrun: bool = False
) -> Callable[[Any], _TaskFunction]: ...


def teardown(
    _func: Any = None, *, on_failure_fail_dagrun: bool = False
) -> _TaskFunction | Callable[[Any], _TaskFunction]:
    """Airflow's ``@teardown`` / ``@teardown(on_failure_fail_dagrun=True)``: the function makes teardown
    tasks (rule ``all_done_setup_success``; a failure fails the run only with ``on_failure_fail_dagrun``)."""

    def decorate(function: Any) -> _TaskFunction:
        decorated = _as_task_function(function, "teardown")
        decorated.is_teardown = True
        decorated.on_failure_fail_dagrun = on_failure_fail_dagrun
        return decorated

    return decorate if _func is None else decorate(_func)


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
