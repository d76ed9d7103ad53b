"""Dynamic task mapping: Airflow 3's ``partial``/``expand``/``expand_kwargs``, one task run as N instances.

``Operator.partial(**fixed).expand(**mapped)``, ``.expand_kwargs(list_or_xcomarg)`` and the same on ``@task``
functions (``taskflow.py``) make a ``MappedOperator``: ONE task of the DAG (dependencies, groups, trigger
rules, retries as any task) that `kdag compile` turns into one task spec with a ``map`` field. Its length is
``length_expression``: literal lengths and upstream XComs (``{xcom: {task, key}}``), combined as Airflow
combines them (``product`` of several ``expand`` arguments, ``zip``, ``concat``; ``map`` keeps a length).
The controller computes it from the upstream tasks' reported lengths (``xcomLengths``) and starts one pod
per instance with ``KDAG_MAP_INDEX=i``; there the runner loads the same DAG file and ``unmap`` computes
the instance's own arguments, as Airflow's ``_expand_mapped_kwargs`` does:

- several ``expand`` arguments: their cross product, the LAST argument varying fastest (Airflow's
  ``DictOfListsExpandInput._expand_mapped_field``); a dict maps to its ``(key, value)`` pairs in order;
- ``expand_kwargs``: element i of the list of dicts (each dict, or an XComArg resolving to one);
- an XComArg of a mapped task resolves to its instances' values in map order (``LazyXComSequence``).

An unmapped task with a mapped task downstream checks its ``return_value`` before pushing it, as Airflow
3's ``_push_xcom_if_needed``: none (``XComForMappingNotPushed``), not a list or dict
(``UnmappableXComTypePushed``) or longer than ``MAX_MAP_LENGTH`` (Airflow refuses the push: the task
fails) fails the task. ``map_index_template`` is rendered with the context after the instance ran
(``render_map_index``). Beyond Airflow, ``expand`` may map over ``task["key"]`` (Airflow 3 refuses custom
keys when the DAG is parsed). Mapped task groups are not supported (``groups.py`` refuses them).

This module sits above ``operators.py`` (a MappedOperator is a BaseOperator) and below ``taskflow.py``;
``operators.py`` reaches it only through ``BaseOperator.partial``'s factory, which this module registers.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence, Sized
from typing import Any

from kdag_runner.airflow import operators
from kdag_runner.airflow.exceptions import DagDefinitionError
from kdag_runner.airflow.operators import BaseOperator
from kdag_runner.airflow.templating import render_text
from kdag_runner.airflow.trigger_rules import TriggerRule
from kdag_runner.airflow.xcom_arg import (
    NOTSET,
    RETURN_KEY,
    ConcatXComArg,
    MapXComArg,
    XComArg,
    XComSource,
    ZipXComArg,
    resolve_xcom_args,
)

MAX_MAP_LENGTH = 1024
"""Airflow's ``[core] max_map_length`` default: the most instances one mapped task may have."""
RENDERED_MAP_INDEX_MAX = 250
"""Airflow's ``rendered_map_index`` column holds this many characters; longer names are cut."""

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


# -- what an instance expands ---------------------------------------------------------------------------


class DictOfListsExpandInput:
    """``expand(**mapped)``: argument -> a list, dict or XComArg; one instance per combination."""

    def __init__(self, value: Mapping[str, Any]) -> None:
        self.value = dict(value)

    def references(self) -> Iterator[tuple[XComSource, str]]:
        for item in self.value.values():
            if isinstance(item, XComArg):
                yield from item.iter_references()

    def length_expression(self, key_form: Callable[[str], str]) -> dict[str, Any]:
        terms = [_length_term(item, key_form) for item in self.value.values()]
        return terms[0] if len(terms) == 1 else {"product": terms}

    def resolve(self, map_index: int, context: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments of instance ``map_index``: the cross product, the last argument fastest."""
        resolved = {k: v.resolve(context) if isinstance(v, XComArg) else v for k, v in self.value.items()}
        lengths: dict[str, int] = {}
        for name, value in resolved.items():
            if not isinstance(value, Sized) or isinstance(value, str):
                raise ValueError(f"cannot expand argument {name!r} over {type(value).__name__}")
            lengths[name] = len(value)
        data: dict[str, Any] = {}
        for name, value in resolved.items():
            index = map_index
            found = -1
            for other in reversed(self.value):
                length = lengths[other]
                if length < 1:
                    raise RuntimeError(f"cannot expand field mapped to length {length!r}")
                if other == name:
                    found = index % length
                    break
                index //= length
            data[name] = _element(value, found, map_index)
        return data


class ListOfDictsExpandInput:
    """``expand_kwargs(list_or_xcomarg)``: instance i gets the i-th dict as its arguments."""

    def __init__(self, value: Sequence[Any] | XComArg) -> None:
        self.value = value

    def references(self) -> Iterator[tuple[XComSource, str]]:
        if isinstance(self.value, XComArg):
            yield from self.value.iter_references()
            return
        for item in self.value:
            if isinstance(item, XComArg):
                yield from item.iter_references()

    def length_expression(self, key_form: Callable[[str], str]) -> dict[str, Any]:
        return _length_term(self.value, key_form)

    def resolve(self, map_index: int, context: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(self.value, XComArg):
            mappings = self.value.resolve(context)
            if not isinstance(mappings, Sequence) or isinstance(mappings, str):
                raise ValueError(f"expand_kwargs() expects a list[dict], not {_describe(mappings)}")
            mapping = mappings[map_index]
        else:
            mapping = self.value[map_index]
            if isinstance(mapping, XComArg):
                mapping = mapping.resolve(context)
        if not isinstance(mapping, Mapping):
            raise ValueError(f"expand_kwargs() expects a list[dict], not list[{_describe(mapping)}]")
        for key in mapping:
            if not isinstance(key, str):
                raise ValueError(
                    "expand_kwargs() input dict keys must all be str,"
                    f" but {key!r} is of type {_describe(key)}"
                )
        return dict(mapping)


ExpandInput = DictOfListsExpandInput | ListOfDictsExpandInput


def _describe(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _element(value: Any, index: int, map_index: int) -> Any:
    if index < 0:
        return value
    if isinstance(value, Sequence):
        return value[index]
    if not isinstance(value, dict):
        raise TypeError(f"can't map over value of type {type(value)}")
    for i, item in enumerate(value.items()):
        if i == index:
            return item
    raise IndexError(f"index {map_index} is over mapped length")


def _length_term(value: Any, key_form: Callable[[str], str]) -> dict[str, Any]:
    """The controller's length expression of one thing to map over (docs/design.md, "Mapped tasks")."""
    if isinstance(value, MapXComArg):
        return _length_term(value.arg, key_form)
    if isinstance(value, ZipXComArg):
        fill = {"fill": True} if value.fillvalue is not NOTSET else {}
        return {"zip": [_length_term(arg, key_form) for arg in value.args], **fill}
    if isinstance(value, ConcatXComArg):
        terms: list[dict[str, Any]] = []
        for arg in value.args:
            term = _length_term(arg, key_form)
            terms.extend(term.get("concat", [term]))
        return {"concat": terms}
    if isinstance(value, XComArg):
        return {"xcom": {"task": value.operator.task_id, "key": key_form(value.key)}}
    if isinstance(value, Sized):
        return {"literal": len(value)}
    raise TypeError(f"cannot map over {type(value).__name__}")


# -- the mapped task --------------------------------------------------------------------------------------


class MappedOperator(BaseOperator):
    """A task run as N instances: the operator class, the arguments they share and what each maps.

    It is a task of its DAG like any (dependencies, groups, retries, trigger rule from its ``partial``
    arguments); ``unmap`` makes instance i's operator in its pod. ``is_mapped`` tells XComArgs of it to
    resolve to every instance's value.
    """

    is_mapped = True

    def __init__(
        self,
        *,
        task_id: str,
        operator_class: type[BaseOperator],
        partial_kwargs: Mapping[str, Any],
        expand_input: ExpandInput,
        strict: bool = False,
        mapped_into: str | None = None,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(task_id=task_id, **base_kwargs)
        self.operator_class = operator_class
        self.partial_kwargs = dict(partial_kwargs)
        self.expand_input = expand_input
        self.strict = strict
        self.mapped_into = mapped_into
        """``op_kwargs`` for a ``@task`` function (the mapped arguments are the function's), else None."""
        defaults: dict[str, Any] = dict(self.dag.default_args) if self.dag is not None else {}
        if self.task_group is not None:
            defaults.update(self.task_group.default_args)
        defaults.update(base_kwargs.get("default_args") or {})
        self.default_args = defaults
        self.template_ext = operator_class.template_ext
        self.ui_color = operator_class.ui_color
        # The tasks whose XComs it maps over (and those in its shared arguments) run first.
        for operator, _ in (*expand_input.references(), *_references(self.partial_kwargs)):
            if isinstance(operator, BaseOperator):
                self.set_upstream(operator)

    def __repr__(self) -> str:
        return f"<Mapped({self.operator_class.__name__}): {self.task_id}>"

    @property
    def task_type(self) -> str:
        return self.operator_class.__name__

    def references(self) -> list[tuple[XComSource, str]]:
        """The (task, key) XComs the instances expand over."""
        return list(self.expand_input.references())

    def length_expression(self, key_form: Callable[[str], str] = str) -> dict[str, Any]:
        """How many instances, as the controller computes it (the task spec's ``map.length``); XCom keys
        through ``key_form`` (compile gives their ConfigMap keys)."""
        return self.expand_input.length_expression(key_form)

    def execute(self, context: dict[str, Any]) -> Any:
        raise RuntimeError("can't resolve task-mapping argument without expanding")

    def check_mapped_upstream(self, upstream: Any, value: Any, ti: Any) -> None:
        """Called by ``upstream.push_result`` before it pushes ``value`` (its return value, or None): fail it
        when this task maps over that value and it cannot be mapped (Airflow's ``_push_xcom_if_needed``)."""
        if getattr(ti, "map_index", -1) >= 0 or getattr(upstream, "is_mapped", False):
            return  # a mapped instance's values are counted, not mapped over
        if not any(op.task_id == upstream.task_id and key == RETURN_KEY for op, key in self.references()):
            return
        if value is None:
            raise XComForMappingNotPushed()
        if not is_mappable_value(value):
            raise UnmappableXComTypePushed(value)
        if len(value) > MAX_MAP_LENGTH:
            raise UnmappableXComLengthPushed(len(value), MAX_MAP_LENGTH)

    def unmap(self, context: Mapping[str, Any]) -> BaseOperator:
        """The operator instance ``context["ti"].map_index`` runs: the shared arguments plus its own, every
        XComArg among them resolved (so making it joins it to no DAG), in the mapped task's place."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        if map_index is None or map_index < 0:
            raise RuntimeError("can't resolve task-mapping argument without expanding")
        mapped = self.expand_input.resolve(map_index, context)
        shared = dict(self.partial_kwargs)
        if self.mapped_into is not None:
            own = dict(shared.get(self.mapped_into) or {})
            if self.strict:
                _prevent_duplicates(own, mapped, "mapping already partial")
            shared[self.mapped_into] = {**own, **mapped}
        else:
            if self.strict:
                _prevent_duplicates(shared, mapped, "unmappable or already specified")
            shared.update(mapped)
        base = {name: value for name, value in self.options.items() if name not in ("task_group", "params")}
        base.update({name: shared.pop(name) for name in list(shared) if name in base})
        kwargs = resolve_xcom_args({**base, **shared}, ti)
        operator = self.operator_class(
            task_id=self.task_id, default_args=self.default_args, params=self.params, **kwargs
        )
        # In the mapped task's place: its DAG, group and relatives (branches read them), never added to the
        # DAG (which holds the mapped task under this id).
        operator.dag = self.dag
        operator.task_group = self.task_group
        operator._upstream = dict(self._upstream)
        operator._downstream = dict(self._downstream)
        operator.trigger_rule = self.trigger_rule
        operator.is_setup = self.is_setup
        operator.is_teardown = self.is_teardown
        operator.on_failure_fail_dagrun = self.on_failure_fail_dagrun
        operator.definition_site = self.definition_site
        return operator


def _references(value: Any) -> Iterator[tuple[XComSource, str]]:
    if isinstance(value, XComArg):
        yield from value.iter_references()
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _references(item)


def _prevent_duplicates(first: Mapping[str, Any], second: Mapping[str, Any], reason: str) -> None:
    duplicated = sorted(set(first) & set(second))
    if len(duplicated) == 1:
        raise TypeError(f"{reason} argument: {duplicated[0]}")
    if duplicated:
        raise TypeError(f"{reason} arguments: {', '.join(duplicated)}")


def unmap(task: BaseOperator, context: Mapping[str, Any]) -> BaseOperator:
    """The operator a task's attempt runs: a mapped task's instance (``unmap``), else the task itself."""
    return task.unmap(context) if isinstance(task, MappedOperator) else task


# -- classic operators: Operator.partial(...).expand(...) ------------------------------------------------


def _init_parameters(operator_class: type[BaseOperator]) -> set[str]:
    """Every keyword the operator class's ``__init__`` chain names (BaseOperator's arguments included)."""
    names = set(operators.BASE_ARGUMENTS) | {"task_id", "dag", "task_group", "default_args"}
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


def _check_arguments(operator_class: type[BaseOperator], func: str, kwargs: Mapping[str, Any]) -> None:
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


def _check_rule(kwargs: Mapping[str, Any], expand_input: ExpandInput, func: str) -> None:
    """Airflow refuses mapping over XComs for a task with trigger rule ``always`` (it may run before them)."""
    if kwargs.get("trigger_rule") == TriggerRule.ALWAYS and any(True for _ in expand_input.references()):
        raise MappingError(
            f"Task-generated mapping within a task using '{func}' is not allowed with trigger rule 'always'."
        )


class OperatorPartial:
    """What ``Operator.partial(**kwargs)`` gives: the arguments every instance shares, until ``expand`` or
    ``expand_kwargs`` makes the mapped task."""

    def __init__(self, operator_class: type[BaseOperator], kwargs: Mapping[str, Any]) -> None:
        if "task_id" not in kwargs:
            raise MappingError(f"{operator_class.__name__}.partial() needs task_id")
        _check_arguments(operator_class, "partial", kwargs)
        self.operator_class = operator_class
        self.kwargs = dict(kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.operator_class.__name__}.partial({args})"

    def expand(self, **mapped_kwargs: Any) -> MappedOperator:
        """One instance per combination of the mapped arguments' elements."""
        if not mapped_kwargs:
            raise MappingError(f"task '{self.kwargs['task_id']}': no arguments to expand against")
        _check_arguments(self.operator_class, "expand", mapped_kwargs)
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
        _check_rule(self.kwargs, expand_input, func)
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


_BASE_KWARGS = frozenset({*operators.BASE_ARGUMENTS, "dag", "task_group", "default_args"})


def operator_partial(operator_class: type[BaseOperator], kwargs: Mapping[str, Any]) -> OperatorPartial:
    """``BaseOperator.partial``'s factory (registered with ``operators``)."""
    return OperatorPartial(operator_class, kwargs)


operators.register_partial(operator_partial)


# -- @task functions: fn.partial(...).expand(...) -------------------------------------------------------


def check_function_arguments(function: Callable[..., Any], func: str, kwargs: Mapping[str, Any]) -> None:
    """Airflow's ``_validate_arg_names`` for a ``@task`` function: no context keys, only the function's
    parameters (unless it takes ``**kwargs``), and ``expand``'s values lists, dicts or XComArgs."""
    shadowed = sorted(_CONTEXT_KEYS & set(kwargs))
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
    _check_rule(options, expand_input, func)
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


# -- after an instance ran --------------------------------------------------------------------------------


def render_map_index(task: BaseOperator, context: Mapping[str, Any]) -> str | None:
    """The instance's name: ``map_index_template`` (the context's, which the task may have changed) rendered
    with the context, as Airflow does after ``execute``; None without a template. At most 250 characters."""
    template = context.get("map_index_template")
    if not template:
        return None
    rendered = render_text(
        str(template), context, task_id=task.task_id, field="map_index_template", dag=task.dag
    )
    return str(rendered)[:RENDERED_MAP_INDEX_MAX]
