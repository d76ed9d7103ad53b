"""``XComArg``: what calling a ``@task`` function gives (and ``operator.output``); the helpers that find and
resolve XComArgs.

As Airflow 3's ``PlainXComArg``: ``arg["key"]`` names another key of the same task; ``str(arg)`` is the Jinja
expression that pulls it (``{{ task_instance.xcom_pull(task_ids='t', dag_id='d', key='return_value') }}``),
so an f-string puts the value in a templated field; an XComArg in a template field (or in a list or dict
there) is replaced by the value its task pushed, never rendered again. ``>>``/``<<``, ``as_setup()``,
``as_teardown()`` and ``with`` (setup_teardown.py) act on its task.
``map(f)``, ``zip(*others, fillvalue=)`` and ``concat(*others)`` derive what a mapped task expands over
(``mapping.py``; what they resolve to: ``xcom_arg_results.py``); an XComArg of a mapped task resolves to its
instances' values in map order. An XComArg of a task in a mapped task group resolves, in an instance of a
task of the same group, to the value of the same map index; anywhere else to every instance's values (one
value alone as itself, as Airflow 3.3's ``XCom.get_all`` pull gives it). ``ResolveMixin`` is what resolves
when a task runs: an XComArg, or a mapped group function's ``MappedArgument`` (``expand_input.py``).

This module sits below ``operators.py``, which unwraps XComArgs in ``>>``/``set_upstream``: it sees the
task an XComArg refers to only through the ``XComSource`` Protocol and never imports ``operators.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn, Protocol, TypeAlias

from kdag_runner.airflow import setup_teardown
from kdag_runner.airflow.dependencies import DependencyMixin
from kdag_runner.airflow.exceptions import AirflowException, DagDefinitionError
from kdag_runner.airflow.groups import closest_mapped_group
from kdag_runner.airflow.xcom_arg_results import NOTSET, ConcatResult, MapResult, ZipResult

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


class ResolveMixin:
    """What a task's argument may hold that resolves only when the task runs (Airflow's ``ResolveMixin``):
    an ``XComArg``, or a mapped group function's ``MappedArgument`` (``expand_input.py``)."""

    def iter_references(self) -> Iterable[tuple[XComSource, str]]:
        """The (task, key) XComs it stands for: a task given it depends on those tasks."""
        raise NotImplementedError

    def resolve(self, context: Mapping[str, Any] | Any) -> Any:
        """Its value in a running task, from the task's context (or its ``ti``)."""
        raise NotImplementedError


class XComArg(ResolveMixin, DependencyMixin):
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
        map_indexes: int | None = None
        group = closest_mapped_group(self.operator)
        if group is not None:
            # A task of a mapped task group (Airflow's get_relevant_upstream_map_indexes): the same map
            # index inside the group; elsewhere all its values, in map order, one alone as itself.
            map_index = getattr(ti, "map_index", -1)
            same_group = closest_mapped_group(getattr(ti, "task", None)) is group
            if map_index is None or map_index < 0 or not same_group:
                return ti.xcom_pull(task_ids=self.operator.task_id, key=self.key)
            map_indexes = map_index
        value = ti.xcom_pull(
            task_ids=self.operator.task_id, key=self.key, map_indexes=map_indexes, default=_MISSING
        )
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

    def __enter__(self) -> XComArg:
        """`with teardown_fn(setup_fn()):`: as ``with`` on the task (``setup_teardown.py``)."""
        setup_teardown.enter(self.operator)  # type: ignore[arg-type]
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        setup_teardown.exit_block(exc_type)


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
    """The XComArgs in ``value``, inside lists, tuples, sets and dict values too (another ``ResolveMixin``,
    a ``MappedArgument``, stands for those its group expands over)."""
    if isinstance(value, XComArg):
        return [value]
    if isinstance(value, ResolveMixin):
        return [XComArg(operator, key) for operator, key in value.iter_references()]
    if isinstance(value, list | tuple | set):
        return [arg for item in value for arg in find_xcom_args(item)]
    if isinstance(value, dict):
        return [arg for item in value.values() for arg in find_xcom_args(item)]
    return []


def resolve_xcom_args(value: Any, ti: Any, resolved: list[Any] | None = None) -> Any:
    """Replace XComArgs (inside lists and dicts too) by the values their tasks pushed (each also appended
    to ``resolved`` when given)."""
    if isinstance(value, XComArg):
        found = value.resolve(ti)
        if resolved is not None:
            resolved.append(found)
        return found
    if isinstance(value, list | tuple):
        return type(value)(resolve_xcom_args(v, ti, resolved) for v in value)
    if isinstance(value, dict):
        return {k: resolve_xcom_args(v, ti, resolved) for k, v in value.items()}
    return value


# -- dynamic task mapping: XComArgs derived with map(), zip() and concat() --------------------------------
# As Airflow 3's MapXComArg, ZipXComArg and ConcatXComArg: resolved in a mapped instance, each gives a
# sequence whose elements are computed only when taken (xcom_arg_results.py). Their lengths are what the
# controller computes from the upstream tasks' reported XCom lengths (length_expression in expand_input.py).


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
