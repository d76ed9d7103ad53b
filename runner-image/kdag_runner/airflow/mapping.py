"""Dynamic task mapping: Airflow 3's ``partial``/``expand``/``expand_kwargs``, one task run as N instances.

``Operator.partial(**fixed).expand(**mapped)``, ``.expand_kwargs(list_or_xcomarg)`` and the same on ``@task``
functions (``taskflow.py``) make a ``MappedOperator`` (``mapped_operator.py``): ONE task of the DAG that
`kdag compile` turns into one task spec with a ``map`` field; what it expands over, and instance i's share,
is its ``expand_input.py``. Beyond Airflow, ``expand`` may map over ``task["key"]`` (Airflow 3 refuses custom
keys when the DAG is parsed). What Airflow refuses is checked as it is made (``mapping_checks.py``).

Mapped task groups (``@task_group`` functions' ``partial``/``expand``/``expand_kwargs``: ``MappedTaskGroup``)
make every task of the group run as N instances, N the group's length (the same expression and rules as a
mapped task's); the function's parameters are ``MappedArgument``s that instance i resolves to its own
element, ``partial`` arguments are constant. The tasks whose XComs the group expands over become upstream
of its root tasks. kdag does not run a mapped task, or a mapped task group, inside a mapped task group
(refused where the DAG file makes it).

This module sits above ``operators.py`` and ``group_decorator.py`` and below ``taskflow.py``; ``operators.py``
reaches it only through ``BaseOperator.partial``'s factory, and ``group_decorator.py`` through the group
mapping, which this module registers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kdag_runner.airflow import group_decorator, operators
from kdag_runner.airflow.arguments import BASE_ARGUMENTS
from kdag_runner.airflow.expand_input import (
    DictOfListsExpandInput,
    ExpandInput,
    ListOfDictsExpandInput,
    MappedArgument,
)
from kdag_runner.airflow.group_decorator import TaskGroupFunction
from kdag_runner.airflow.groups import TaskGroup, closest_mapped_group
from kdag_runner.airflow.mapped_operator import MappedOperator
from kdag_runner.airflow.mapping_checks import (
    MappingError,
    check_arguments,
    check_expand_kwargs,
    check_function_arguments,
    check_rule,
    check_value_to_map,
)
from kdag_runner.airflow.operators import BaseOperator
from kdag_runner.airflow.trigger_rules import TriggerRule
from kdag_runner.airflow.xcom_arg import XComSource

# -- classic operators: Operator.partial(...).expand(...) ------------------------------------------------


class OperatorPartial:
    """What ``Operator.partial(**kwargs)`` gives: the arguments every instance shares, until ``expand`` or
    ``expand_kwargs`` makes the mapped task."""

    def __init__(self, operator_class: type[BaseOperator], kwargs: Mapping[str, Any]) -> None:
        if "task_id" not in kwargs:
            raise MappingError(f"{operator_class.__name__}.partial() needs task_id")
        check_arguments(operator_class, "partial", kwargs)
        self.operator_class = operator_class
        self.kwargs = dict(kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.operator_class.__name__}.partial({args})"

    def expand(self, **mapped_kwargs: Any) -> MappedOperator:
        """One instance per combination of the mapped arguments' elements."""
        if not mapped_kwargs:
            raise MappingError(f"task '{self.kwargs['task_id']}': no arguments to expand against")
        check_arguments(self.operator_class, "expand", mapped_kwargs)
        duplicated = sorted(set(self.kwargs) & set(mapped_kwargs))
        if duplicated:
            raise MappingError(
                f"task '{self.kwargs['task_id']}': unmappable or already specified argument:"
                f" {', '.join(duplicated)}"
            )
        return self._expand(DictOfListsExpandInput(mapped_kwargs), strict=False, func="expand")

    def expand_kwargs(self, kwargs: Any, *, strict: bool = True) -> MappedOperator:
        """One instance per dict of arguments (a list of dicts, or an XComArg of one)."""
        check_expand_kwargs(kwargs)
        return self._expand(ListOfDictsExpandInput(kwargs), strict=strict, func="expand_kwargs")

    def _expand(self, expand_input: ExpandInput, *, strict: bool, func: str) -> MappedOperator:
        check_rule(self.kwargs, expand_input, func)
        shared = dict(self.kwargs)
        task_id = shared.pop("task_id")
        base = {name: shared.pop(name) for name in list(shared) if name in _BASE_KWARGS}
        return MappedOperator(
            task_id=task_id,
            operator_class=self.operator_class,
            partial_kwargs=shared,
            expand_input=expand_input,
            strict=strict,
            **base,
        )


_BASE_KWARGS = frozenset({*BASE_ARGUMENTS, "dag", "task_group", "default_args"})


def operator_partial(operator_class: type[BaseOperator], kwargs: Mapping[str, Any]) -> OperatorPartial:
    """``BaseOperator.partial``'s factory (registered with ``operators``)."""
    return OperatorPartial(operator_class, kwargs)


operators.register_partial(operator_partial)


# -- @task functions: fn.partial(...).expand(...) -------------------------------------------------------


def mapped_task_function(
    *,
    function: Callable[..., Any],
    operator_class: type[BaseOperator],
    task_id: str,
    options: Mapping[str, Any],
    partial_kwargs: Mapping[str, Any],
    expand_input: ExpandInput,
    strict: bool,
) -> MappedOperator:
    """The mapped task of a ``@task`` function: its instances call it with the shared arguments plus their
    own (``op_kwargs``); ``options`` are the operator's arguments (``@task(...)``, ``.override(...)``)."""
    func = "expand" if isinstance(expand_input, DictOfListsExpandInput) else "expand_kwargs"
    check_rule(options, expand_input, func)
    shared = dict(options)
    base = {name: shared.pop(name) for name in list(shared) if name in _BASE_KWARGS}
    shared.update(python_callable=function, op_args=[], op_kwargs=dict(partial_kwargs))
    return MappedOperator(
        task_id=task_id,
        operator_class=operator_class,
        partial_kwargs=shared,
        expand_input=expand_input,
        strict=strict,
        mapped_into="op_kwargs",
        **base,
    )


# -- mapped task groups: @task_group's partial/expand/expand_kwargs ----------------------------------------


class MappedTaskGroup(TaskGroup):
    """A task group run as N instances (Airflow's ``MappedTaskGroup``): every task in it is mapped with the
    group's length, and instance i of a task waits only for instance i of the group's tasks upstream of it.

    Made by ``expand``/``expand_kwargs`` on a ``@task_group`` function; `kdag compile` writes the group's
    id and length expression on each of its tasks (the task spec's ``map``)."""

    is_mapped = True

    def __init__(self, group_id: str, *, expand_input: ExpandInput, **options: Any) -> None:
        super().__init__(group_id, **options)
        self.expand_input = expand_input
        outer = closest_mapped_group(self.parent_group)
        if outer is not None:
            raise MappingError(
                f"mapped task group '{self.group_id}' inside mapped task group '{outer.group_id}' is not"
                " supported by kdag (map one of them)"
            )

    def __repr__(self) -> str:
        return f"<MappedTaskGroup: {self.group_id}>"

    def references(self) -> list[tuple[XComSource, str]]:
        """The (task, key) XComs the group expands over."""
        return list(self.expand_input.references())

    def length_expression(self, key_form: Callable[[str], str] = str) -> dict[str, Any]:
        """How many instances each task of the group has (its task specs' ``map.length``)."""
        return self.expand_input.length_expression(key_form)

    def check_mapped_upstream(self, upstream: Any, value: Any, ti: Any) -> None:
        """As ``MappedOperator.check_mapped_upstream``, for a task whose value the group expands over."""
        check_value_to_map(self.references(), upstream, value, ti)

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                for child in self.children.values():
                    if getattr(child, "trigger_rule", None) == TriggerRule.ALWAYS:
                        raise MappingError(
                            "Task-generated mapping within a mapped task group is not allowed with trigger"
                            " rule 'always'"
                        )
                # As Airflow: the tasks whose XComs the group expands over run before its root tasks.
                for operator, _ in self.expand_input.references():
                    self.set_upstream(operator)
        finally:
            super().__exit__(*exc)


class _GroupMapping:
    """``partial``/``expand``/``expand_kwargs`` of ``@task_group`` functions (registered with
    ``group_decorator``), with Airflow's checks (``_TaskGroupFactory``); the function is called once, with
    ``MappedArgument``s."""

    def partial(self, function: TaskGroupFunction, kwargs: Mapping[str, Any]) -> TaskGroupFunction:
        check_function_arguments(function.function, "partial", kwargs, context_keys=False)
        duplicated = sorted(set(function.partial_kwargs) & set(kwargs))
        if duplicated:
            raise MappingError(f"duplicate partial argument: {', '.join(duplicated)}")
        return TaskGroupFunction(function.function, function.options, {**function.partial_kwargs, **kwargs})

    def expand(self, function: TaskGroupFunction, kwargs: Mapping[str, Any]) -> Any:
        if not kwargs:
            name = function.options["group_id"]
            raise MappingError(f"@task_group '{name}': no arguments to expand against")
        check_function_arguments(function.function, "expand", kwargs, context_keys=False)
        duplicated = sorted(set(function.partial_kwargs) & set(kwargs))
        if duplicated:
            raise MappingError(f"mapping already partial argument: {', '.join(duplicated)}")
        return _mapped_group(function, DictOfListsExpandInput(kwargs), list(kwargs))

    def expand_kwargs(self, function: TaskGroupFunction, kwargs: Any) -> Any:
        check_expand_kwargs(kwargs)
        parameters = inspect.signature(function.function).parameters.values()
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
            raise MappingError("calling expand_kwargs() on task group function with * or ** is not supported")
        # Which parameters each dict gives is known only in an instance: every one not partial is mapped.
        names = [p.name for p in parameters if p.name not in function.partial_kwargs]
        return _mapped_group(function, ListOfDictsExpandInput(kwargs), names)


def _mapped_group(function: TaskGroupFunction, expand_input: ExpandInput, names: Sequence[str]) -> Any:
    mapped = {name: MappedArgument(expand_input, name) for name in names}

    def make(**options: Any) -> TaskGroup:
        return MappedTaskGroup(expand_input=expand_input, **options)

    return function.create_group(make, **function.partial_kwargs, **mapped)


group_decorator.register_group_mapping(_GroupMapping())
