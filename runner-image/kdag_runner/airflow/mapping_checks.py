"""What Airflow refuses about dynamic task mapping, and the values a mapped task cannot expand over.

When the DAG file maps (``partial``, ``expand``, ``expand_kwargs`` of operators, ``@task`` and ``@task_group``
functions), Airflow's checks raise ``MappingError``, whose message starts with the DAG file and line. When an
unmapped task with a mapped task (or group) downstream pushes its ``return_value``, ``check_value_to_map``
fails it as Airflow 3's ``_push_xcom_if_needed`` does: none (``XComForMappingNotPushed``), not a list or dict
(``UnmappableXComTypePushed``) or longer than ``MAX_MAP_LENGTH`` (``UnmappableXComLengthPushed``).
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kdag_runner.airflow.arguments import BASE_ARGUMENTS
from kdag_runner.airflow.exceptions import DagDefinitionError
from kdag_runner.airflow.expand_input import ExpandInput
from kdag_runner.airflow.operators import BaseOperator
from kdag_runner.airflow.trigger_rules import TriggerRule
from kdag_runner.airflow.xcom_arg import RETURN_KEY, XComArg, XComSource

MAX_MAP_LENGTH = 1024
"""Airflow's ``[core] max_map_length`` default: the most instances one mapped task may have."""

# Arguments a task's context already has: a @task function cannot map or fix them (Airflow's check).
_CONTEXT_KEYS = frozenset(
    {
        "conf",
        "dag",
        "dag_run",
        "data_interval_end",
        "data_interval_start",
        "ds",
        "ds_nodash",
        "expanded_ti_count",
        "inlets",
        "logical_date",
        "macros",
        "map_index_template",
        "outlets",
        "params",
        "run_id",
        "task",
        "task_instance",
        "task_instance_key_str",
        "ti",
        "ts",
        "ts_nodash",
        "ts_nodash_with_tz",
        "var",
    }
)


class MappingError(DagDefinitionError):
    """A mapping Airflow refuses when it parses the DAG file; the message starts with that file and line."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{_where()}: {message}" if _where() else message)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _where() -> str:
    """``DAG file 'x.py', line N`` of the innermost frame outside kdag_runner (the DAG file's call), or ""."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR + os.sep) and not filename.startswith("<frozen"):
            return f"DAG file '{filename}', line {frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return ""


class XComForMappingNotPushed(TypeError):
    """A task with a mapped task downstream returned nothing to map over (Airflow's)."""

    def __str__(self) -> str:
        return "did not push XCom for task mapping"


class UnmappableXComTypePushed(TypeError):
    """A task with a mapped task downstream returned something else than a list or dict (Airflow's)."""

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.type_name = type(value).__qualname__

    def __str__(self) -> str:
        return f"unmappable return type {self.type_name!r}"


class UnmappableXComLengthPushed(TypeError):
    """A task with a mapped task downstream returned more items than ``max_map_length`` (Airflow refuses
    to store such a value, failing the task)."""

    def __init__(self, length: int, max_length: int) -> None:
        super().__init__(length, max_length)
        self.length = length
        self.max_length = max_length

    def __str__(self) -> str:
        return (
            "pushed value is too large to map as a downstream's dependency:"
            f" {self.length} items, max_map_length is {self.max_length}"
        )


def is_mappable_value(value: Any) -> bool:
    """A list or dict (any sequence but text): what a mapped task can expand over (Airflow's)."""
    return isinstance(value, Sequence | dict) and not isinstance(value, str | bytes | bytearray)


def _is_mappable_argument(value: Any) -> bool:
    return isinstance(value, XComArg) or is_mappable_value(value)


def check_value_to_map(
    references: Sequence[tuple[XComSource, str]], upstream: Any, value: Any, ti: Any
) -> None:
    """Fail ``upstream`` before it pushes ``value`` when a mapped task (or group) expands over its
    ``return_value`` (``references``) and ``value`` cannot be mapped (Airflow's ``_push_xcom_if_needed``)."""
    if getattr(ti, "map_index", -1) >= 0 or getattr(upstream, "is_mapped", False):
        return  # a mapped instance's values are counted, not mapped over
    if not any(op.task_id == upstream.task_id and key == RETURN_KEY for op, key in references):
        return
    if value is None:
        raise XComForMappingNotPushed()
    if not is_mappable_value(value):
        raise UnmappableXComTypePushed(value)
    if len(value) > MAX_MAP_LENGTH:
        raise UnmappableXComLengthPushed(len(value), MAX_MAP_LENGTH)



# -- the arguments of partial, expand and expand_kwargs -------------------------------------------------


def _init_parameters(operator_class: type[BaseOperator]) -> set[str]:
    """Every keyword the operator class's ``__init__`` chain names (BaseOperator's arguments included)."""
    names = set(BASE_ARGUMENTS) | {"task_id", "dag", "task_group", "default_args"}
    for klass in operator_class.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names.update(p.name for p in parameters if p.kind in keywords and p.name != "self")
    return names


def check_arguments(operator_class: type[BaseOperator], func: str, kwargs: Mapping[str, Any]) -> None:
    """Airflow's ``validate_mapping_kwargs``: every argument is one the operator takes; ``expand``'s are
    lists, dicts or XComArgs."""
    known = _init_parameters(operator_class)
    unknown = [name for name in kwargs if name not in known]
    name = operator_class.__name__
    if len(unknown) == 1:
        raise MappingError(f"{name}.{func}() got an unexpected keyword argument {unknown[0]!r}")
    if unknown:
        raise MappingError(
            f"{name}.{func}() got unexpected keyword arguments {', '.join(repr(n) for n in unknown)}"
        )
    if func == "expand":
        for key, value in kwargs.items():
            if not _is_mappable_argument(value):
                kind = type(value).__name__
                raise MappingError(
                    f"{name}.expand() got an unexpected type {kind!r} for keyword argument {key}"
                )


def check_expand_kwargs(value: Any) -> None:
    if isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            if not isinstance(item, XComArg | Mapping):
                raise MappingError(f"expected XComArg or list[dict], not {type(value).__name__}")
    elif not isinstance(value, XComArg):
        raise MappingError(f"expected XComArg or list[dict], not {type(value).__name__}")


def check_rule(kwargs: Mapping[str, Any], expand_input: ExpandInput, func: str) -> None:
    """Airflow refuses mapping over XComs for a task with trigger rule ``always`` (it may run before them)."""
    if kwargs.get("trigger_rule") == TriggerRule.ALWAYS and any(True for _ in expand_input.references()):
        raise MappingError(
            f"Task-generated mapping within a task using '{func}' is not allowed with trigger rule 'always'."
        )


def check_function_arguments(
    function: Callable[..., Any], func: str, kwargs: Mapping[str, Any], *, context_keys: bool = True
) -> None:
    """Airflow's ``_validate_arg_names`` for a ``@task`` function: no context keys (a ``@task_group``
    function, ``context_keys=False``, may take them), only the function's parameters (unless it takes
    ``**kwargs``), and ``expand``'s values lists, dicts or XComArgs."""
    shadowed = sorted(_CONTEXT_KEYS & set(kwargs)) if context_keys else []
    if len(shadowed) == 1:
        raise MappingError(f"cannot call {func}() on task context variable {shadowed[0]!r}")
    if shadowed:
        names = ", ".join(repr(n) for n in shadowed)
        raise MappingError(f"cannot call {func}() on task context variables {names}")
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
        names_left: list[str] = []
    else:
        names_left = [name for name in kwargs if name not in parameters]
    if func == "expand":
        for name, value in kwargs.items():
            if name in parameters and not _is_mappable_argument(value):
                raise MappingError(
                    f"expand() got an unexpected type {type(value).__name__!r} for keyword argument {name!r}"
                )
    if len(names_left) == 1:
        raise MappingError(f"{func}() got an unexpected keyword argument {names_left[0]!r}")
    if names_left:
        raise MappingError(
            f"{func}() got unexpected keyword arguments {', '.join(repr(n) for n in names_left)}"
        )
