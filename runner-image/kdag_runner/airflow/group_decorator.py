"""``@task_group``: a function whose every call builds a new ``TaskGroup`` around the tasks it makes.

A call runs the function inside ``with TaskGroup(...)`` (``name``, then ``name__1``, ... when called again;
the function's docstring becomes the group's tooltip and ``doc_md``) and returns what the function returns,
or the group when that is None. ``partial``, ``expand`` and ``expand_kwargs`` make a mapped task group
instead: ``mapping.py``, which sits above this module, registers how (``register_group_mapping``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from kdag_runner.airflow.exceptions import DagDefinitionError
from kdag_runner.airflow.groups import TaskGroup

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
    ``group_function() >> task`` connects either the returned task or the whole group. ``partial``,
    ``expand`` and ``expand_kwargs`` make a mapped task group instead (``mapping.py``)."""

    def __init__(
        self,
        function: Callable[..., Any],
        options: Mapping[str, Any],
        partial_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(function):
            raise DagDefinitionError(f"@task_group: needs a function, got {type(function).__name__}")
        unknown = sorted(set(options) - _GROUP_OPTIONS)
        if unknown:
            raise DagDefinitionError(f"@task_group '{function.__name__}': unknown argument '{unknown[0]}'")
        self.function = function
        self.options = {"group_id": function.__name__, **options}
        self.partial_kwargs: dict[str, Any] = dict(partial_kwargs or {})
        """Arguments of the function every instance of a mapped group gets (``partial``)."""
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.create_group(TaskGroup, *args, **kwargs)

    def create_group(self, factory: Callable[..., TaskGroup], *args: Any, **kwargs: Any) -> Any:
        """Run the function inside a new group made by ``factory(**group_options)``; what the function
        returns, or the group when that is None."""
        with factory(**{"add_suffix_on_collision": True, **self.options}) as group:
            doc = self.function.__doc__
            if doc:
                group.tooltip = group.tooltip or doc
                group.doc_md = group.doc_md or doc
            result = self.function(*args, **kwargs)
        return group if result is None else result

    def override(self, **options: Any) -> TaskGroupFunction:
        """The same function with other group arguments (``group_id=`` ...)."""
        return TaskGroupFunction(self.function, {**self.options, **options}, self.partial_kwargs)

    def partial(self, **kwargs: Any) -> TaskGroupFunction:
        """Airflow's ``group.partial(**kwargs)``: arguments every instance of the mapped group shares."""
        return _mapping().partial(self, kwargs)

    def expand(self, **kwargs: Any) -> Any:
        """Airflow's ``group.expand(**kwargs)``: the group's tasks run once per combination of the
        arguments' elements (a mapped task group)."""
        return _mapping().expand(self, kwargs)

    def expand_kwargs(self, kwargs: Any) -> Any:
        """Airflow's ``group.expand_kwargs(list_or_xcomarg)``: the group's tasks run once per dict."""
        return _mapping().expand_kwargs(self, kwargs)


class GroupMapping(Protocol):
    """How ``@task_group`` functions are mapped; ``mapping.py`` registers the one implementation."""

    def partial(self, function: TaskGroupFunction, kwargs: Mapping[str, Any]) -> TaskGroupFunction: ...

    def expand(self, function: TaskGroupFunction, kwargs: Mapping[str, Any]) -> Any: ...

    def expand_kwargs(self, function: TaskGroupFunction, kwargs: Any) -> Any: ...


_group_mapping: list[GroupMapping] = []


def register_group_mapping(mapping: GroupMapping) -> None:
    """Called by ``mapping.py`` when it is imported (it sits above this module)."""
    _group_mapping[:] = [mapping]


def _mapping() -> GroupMapping:
    if not _group_mapping:
        raise DagDefinitionError("mapped task groups need kdag_runner.airflow.mapping imported")
    return _group_mapping[0]


def task_group(python_callable: Any = None, **options: Any) -> Any:
    """Airflow's ``@task_group`` / ``@task_group(group_id=..., default_args=..., ...)``.

    As in Airflow, a positional argument counts only when it is the function: ``@task_group("name")``
    names nothing (the group takes the function's name); give ``group_id="name"``.
    """
    if callable(python_callable) and not options:
        return TaskGroupFunction(python_callable, {})
    return lambda function: TaskGroupFunction(function, options)
