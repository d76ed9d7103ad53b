"""``XComArg``: what calling a ``@task`` function gives (and ``operator.output``); the helpers that find and
resolve XComArgs.

As Airflow 3's ``PlainXComArg``: ``arg["key"]`` names another key of the same task; ``str(arg)`` is the Jinja
expression that pulls it (``{{ task_instance.xcom_pull(task_ids='t', dag_id='d', key='return_value') }}``),
so an f-string puts the value in a templated field; an XComArg in a template field (or in a list or dict
there) is replaced by the value its task pushed, never rendered again. ``>>``/``<<``, ``as_setup()`` and
``as_teardown()`` act on its task.
``map(f)``, ``zip(*others, fillvalue=)`` and ``concat(*others)`` derive what a mapped task expands over
(``mapping.py``); an XComArg of a mapped task resolves to its instances' values in map order.

This module sits below ``operators.py``, which unwraps XComArgs in ``>>``/``set_upstream``: it sees the
task an XComArg refers to only through the ``XComSource`` Protocol and never imports ``operators.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn, Protocol, TypeAlias

from kdag_runner.airflow.dependencies import DependencyMixin
from kdag_runner.airflow.exceptions import AirflowException, DagDefinitionError

RETURN_KEY = "return_value"


class XComSource(Protocol):
    """The task an XComArg refers to, as this module needs it; ``BaseOperator`` is the one implementation."""

    @property
    def task_id(self) -> str: ...

    def set_upstream(self, other: Any) -> None: ...

    def set_downstream(self, other: Any) -> None: ...

    def __rshift__(self, other: Any) -> Any: ...

    def __lshift__(self, other: Any) -> Any: ...


SourceOrSources: TypeAlias = "XComSource | Sequence[XComSource]"


class XComNotFound(AirflowException):
    """An XComArg with a key its task did not push (Airflow's ``XComNotFound``)."""

    def __init__(self, dag_id: str, task_id: str, key: str) -> None:
        super().__init__(f'XComArg result from {task_id} at {dag_id} with key="{key}" is not found!')
        self.dag_id = dag_id
        self.task_id = task_id
        self.key = key


class _Missing:
    pass


_MISSING = _Missing()


class _NotSetType:
    def __repr__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSetType()
"""No ``fillvalue`` given to ``zip``."""


class XComArg(DependencyMixin):
    """What calling a ``@task`` function gives: an XCom of that task, pulled when a downstream task runs."""

    def __init__(self, operator: XComSource, key: str = RETURN_KEY) -> None:
        self.operator = operator
        self.key = key

    def __getitem__(self, key: str) -> XComArg:
        if not isinstance(key, str):
            raise ValueError(f"XComArg only supports str lookup, received {type(key).__name__}")
        return XComArg(self.operator, key)

    def __iter__(self) -> NoReturn:
        # Without this, Python would iterate by calling __getitem__(0), (1), ... for ever.
        raise TypeError("'XComArg' object is not iterable")

    def __repr__(self) -> str:
        if self.key == RETURN_KEY:
            return f"XComArg({self.operator!r})"
        return f"XComArg({self.operator!r}, {self.key!r})"

    def __str__(self) -> str:
        """The Jinja expression that pulls this XCom, for an f-string in a templated field (Airflow's)."""
        dag = getattr(self.operator, "dag", None)
        dag_id = getattr(dag, "dag_id", None) or f"adhoc_{getattr(self.operator, 'owner', 'airflow')}"
        return (
            f"{{{{ task_instance.xcom_pull(task_ids='{self.operator.task_id}', dag_id='{dag_id}',"
            f" key='{self.key}') }}}}"
        )

    def resolve(self, context: Mapping[str, Any] | Any) -> Any:
        """The value the task pushed under the key, from a task's context (or its ``ti``): None for a
        ``return_value`` (or any key of a ``multiple_outputs`` task) it did not push, else XComNotFound."""
        ti = context["ti"] if isinstance(context, Mapping) else context
        if getattr(self.operator, "is_mapped", False):
            # A mapped task's values, in map order, those its instances did not push left out (mapping.py).
            return ti.xcom_pull_mapped(self.operator.task_id, self.key)
        value = ti.xcom_pull(task_ids=self.operator.task_id, key=self.key, map_indexes=None, default=_MISSING)
        if value is not _MISSING:
            return value
        if self.key == RETURN_KEY or getattr(self.operator, "multiple_outputs", False):
            return None
        raise XComNotFound(str(getattr(ti, "dag_id", "")), self.operator.task_id, self.key)

    def iter_references(self) -> Iterable[tuple[XComSource, str]]:
        yield self.operator, self.key

    # -- dynamic task mapping (mapping.py): derived sequences to expand over ---------------------

    def map(self, f: Callable[[Any], Any]) -> XComArg:
        """Airflow's ``arg.map(f)``: each element through ``f`` when a mapped instance takes it."""
        _return_value_only(self, "cannot map against non-return XCom")
        return MapXComArg(self, [f])

    def zip(self, *others: XComArg, fillvalue: Any = NOTSET) -> XComArg:
        """Airflow's ``arg.zip(*others, fillvalue=)``: tuples, as long as the shortest (the longest with a
        ``fillvalue``)."""
        _return_value_only(self, "cannot map against non-return XCom")
        return ZipXComArg([self, *others], fillvalue=fillvalue)

    def concat(self, *others: XComArg) -> XComArg:
        """Airflow's ``arg.concat(*others)``: the elements of each, one after the other."""
        _return_value_only(self, "cannot concatenate non-return XCom")
        return ConcatXComArg([self, *others])

    # -- dependencies: on the task ---------------------------------------------------------------

    @property
    def roots(self) -> list[XComSource]:
        return [self.operator]

    @property
    def leaves(self) -> list[XComSource]:
        return [self.operator]

    def set_upstream(self, other: Any, edge_modifier: Any = None) -> None:
        _relate(self.operator, "set_upstream", other, edge_modifier)

    def set_downstream(self, other: Any, edge_modifier: Any = None) -> None:
        _relate(self.operator, "set_downstream", other, edge_modifier)

    # -- setup and teardown: on the task ---------------------------------------------------------

    @property
    def is_setup(self) -> bool:
        return bool(getattr(self.operator, "is_setup", False))

    @property
    def is_teardown(self) -> bool:
        return bool(getattr(self.operator, "is_teardown", False))

    def as_setup(self) -> XComArg:
        """Mark the task a setup task (Airflow's ``as_setup``)."""
        _call(self.operator, "as_setup")
        return self

    def as_teardown(self, *, setups: Any = None, on_failure_fail_dagrun: bool | None = None) -> XComArg:
        """Mark the task a teardown of ``setups`` (Airflow's ``as_teardown``)."""
        _call(self.operator, "as_teardown", setups=setups, on_failure_fail_dagrun=on_failure_fail_dagrun)
        return self

    def __enter__(self) -> NoReturn:
        raise DagDefinitionError(
            f"task '{self.operator.task_id}': setup/teardown tasks as context managers (`with s >> t:`) are"
            " not supported by kdag; set the dependencies with >> and as_teardown(setups=...)"
        )

    def __exit__(self, *exc: object) -> None:
        return None


def _relate(operator: XComSource, method: str, other: Any, edge_modifier: Any) -> None:
    if edge_modifier is None:
        getattr(operator, method)(_operator_of(other))
    else:
        getattr(operator, method)(_operator_of(other), edge_modifier=edge_modifier)


def _call(operator: XComSource, method: str, **kwargs: Any) -> None:
    function = getattr(operator, method, None)
    if function is None:
        raise DagDefinitionError(f"task '{operator.task_id}': {type(operator).__name__} has no {method}()")
    function(**kwargs)


def _operator_of(value: Any) -> Any:
    if isinstance(value, XComArg):
        return value.operator
    if isinstance(value, list | tuple):
        return [_operator_of(v) for v in value]
    return value


def find_xcom_args(value: Any) -> list[XComArg]:
    """The XComArgs in ``value``, inside lists, tuples, sets and dict values too."""
    if isinstance(value, XComArg):
        return [value]
    if isinstance(value, list | tuple | set):
        return [arg for item in value for arg in find_xcom_args(item)]
    if isinstance(value, dict):
        return [arg for item in value.values() for arg in find_xcom_args(item)]
    return []


def resolve_xcom_args(value: Any, ti: Any) -> Any:
    """Replace XComArgs (inside lists and dicts too) by the values their tasks pushed."""
    if isinstance(value, XComArg):
        return value.resolve(ti)
    if isinstance(value, list | tuple):
        return type(value)(resolve_xcom_args(v, ti) for v in value)
    if isinstance(value, dict):
        return {k: resolve_xcom_args(v, ti) for k, v in value.items()}
    return value


# -- dynamic task mapping: XComArgs derived with map(), zip() and concat() --------------------------------
# As Airflow 3's MapXComArg, ZipXComArg and ConcatXComArg: resolved in a mapped instance, each gives a
# sequence whose elements are computed only when taken, so a map function runs for the instance's element
# alone (an AirflowSkipException there skips that instance). Their lengths are what the controller computes
# from the upstream tasks' reported XCom lengths (mapping.length_expression).


def _return_value_only(arg: XComArg, message: str) -> None:
    if type(arg) is XComArg and arg.key != RETURN_KEY:
        raise ValueError(message)


def _mappable(kind: str, value: Any) -> Sequence[Any] | dict[Any, Any]:
    if isinstance(value, Sequence | dict) and not isinstance(value, str | bytes | bytearray):
        return value
    raise ValueError(f"XCom {kind} expects sequence or dict, not {type(value).__name__}")


class _DerivedXComArg(XComArg):
    """An XComArg over the values of other XComArgs; it depends on (and stands for) all their tasks."""

    def __init__(self, args: Sequence[XComArg]) -> None:
        if not args:
            raise ValueError("needs at least one XComArg")
        for arg in args:
            if not isinstance(arg, XComArg):
                raise TypeError(f"expected XComArg, got {type(arg).__name__}")
        super().__init__(args[0].operator, args[0].key)
        self.args = list(args)

    def iter_references(self) -> Iterable[tuple[XComSource, str]]:
        for arg in self.args:
            yield from arg.iter_references()

    def __getitem__(self, key: str) -> XComArg:
        raise TypeError(f"'{type(self).__name__}' object is not subscriptable")

    def __str__(self) -> str:
        return repr(self)

    @property
    def roots(self) -> list[XComSource]:
        return [operator for operator, _ in self.iter_references()]

    @property
    def leaves(self) -> list[XComSource]:
        return self.roots

    def set_upstream(self, other: Any, edge_modifier: Any = None) -> None:
        for operator in self.roots:
            _relate(operator, "set_upstream", other, edge_modifier)

    def set_downstream(self, other: Any, edge_modifier: Any = None) -> None:
        for operator in self.roots:
            _relate(operator, "set_downstream", other, edge_modifier)


class MapXComArg(_DerivedXComArg):
    """``arg.map(f)``: the elements of ``arg`` through the functions, in order."""

    def __init__(self, arg: XComArg, callables: Sequence[Callable[[Any], Any]]) -> None:
        super().__init__([arg])
        for function in callables:
            if hasattr(function, "operator_class") and hasattr(function, "function"):
                raise ValueError("map() argument must be a plain function, not a @task operator")
            if not callable(function):
                raise TypeError(f"map() argument must be a function, got {type(function).__name__}")
        self.arg = arg
        self.callables = list(callables)

    def __repr__(self) -> str:
        calls = "".join(f".map({getattr(f, '__name__', '<function>')})" for f in self.callables)
        return f"{self.arg!r}{calls}"

    def map(self, f: Callable[[Any], Any]) -> XComArg:
        return MapXComArg(self.arg, [*self.callables, f])

    def resolve(self, context: Mapping[str, Any] | Any) -> Any:
        return MapResult(_mappable("map", self.arg.resolve(context)), self.callables)


class ZipXComArg(_DerivedXComArg):
    """``arg.zip(*others, fillvalue=)``: a tuple of the i-th elements."""

    def __init__(self, args: Sequence[XComArg], *, fillvalue: Any = NOTSET) -> None:
        super().__init__(args)
        self.fillvalue = fillvalue

    def __repr__(self) -> str:
        first, *rest = (repr(arg) for arg in self.args)
        fill = "" if self.fillvalue is NOTSET else f", fillvalue={self.fillvalue!r}"
        return f"{first}.zip({', '.join(rest)}{fill})"

    def resolve(self, context: Mapping[str, Any] | Any) -> Any:
        values = [_mappable("zip", arg.resolve(context)) for arg in self.args]
        return ZipResult(values, self.fillvalue)


class ConcatXComArg(_DerivedXComArg):
    """``arg.concat(*others)``: the elements of each in turn."""

    def __repr__(self) -> str:
        first, *rest = (repr(arg) for arg in self.args)
        return f"{first}.concat({', '.join(rest)})"

    def concat(self, *others: XComArg) -> XComArg:
        return ConcatXComArg([*self.args, *others])

    def resolve(self, context: Mapping[str, Any] | Any) -> Any:
        return ConcatResult([_mappable("concat", arg.resolve(context)) for arg in self.args])


class MapResult(Sequence[Any]):
    """The resolved ``map``: ``[i]`` applies the functions to element i only."""

    def __init__(
        self, value: Sequence[Any] | dict[Any, Any], callables: Sequence[Callable[[Any], Any]]
    ) -> None:
        self.value = value
        self.callables = list(callables)

    def __getitem__(self, index: Any) -> Any:
        item = self.value[index]
        for function in self.callables:
            item = function(item)
        return item

    def __len__(self) -> int:
        return len(self.value)


class ZipResult(Sequence[Any]):
    """The resolved ``zip``: ``[i]`` is the tuple of the i-th elements (``fillvalue`` past an end)."""

    def __init__(self, values: Sequence[Sequence[Any] | dict[Any, Any]], fillvalue: Any = NOTSET) -> None:
        self.values = list(values)
        self.fillvalue = fillvalue

    def __getitem__(self, index: Any) -> Any:
        if index >= len(self):
            raise IndexError(index)
        return tuple(_item_or(value, index, self.fillvalue) for value in self.values)

    def __len__(self) -> int:
        lengths = [len(value) for value in self.values]
        return max(lengths) if self.fillvalue is not NOTSET else min(lengths)


def _item_or(container: Sequence[Any] | dict[Any, Any], index: Any, fillvalue: Any) -> Any:
    try:
        return container[index]
    except (IndexError, KeyError):
        return fillvalue


class ConcatResult(Sequence[Any]):
    """The resolved ``concat``: ``[i]`` counts through each value in turn (a dict gives its keys)."""

    def __init__(self, values: Sequence[Sequence[Any] | dict[Any, Any]]) -> None:
        self.values = list(values)

    def __getitem__(self, index: Any) -> Any:
        i = index if index >= 0 else len(self) + index
        for value in self.values:
            if i < 0:
                break
            if i >= len(value):
                i -= len(value)
            elif isinstance(value, Sequence):
                return value[i]
            else:
                return next(itertools.islice(iter(value), i, None))
        raise IndexError("list index out of range")

    def __len__(self) -> int:
        return sum(len(value) for value in self.values)
