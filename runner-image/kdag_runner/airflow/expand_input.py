"""What a mapped task (or mapped task group) expands over, and instance i's share of it.

As Airflow 3's ``_internal/expandinput.py``: ``expand(**mapped)`` is a ``DictOfListsExpandInput``,
``expand_kwargs(list_or_xcomarg)`` a ``ListOfDictsExpandInput``. Each says which upstream XComs it reads
(``references``), how many instances it makes as the controller computes it (``length_expression``: literal
lengths and ``{xcom: {task, key}}``, combined as Airflow combines them; docs/design.md, "Mapped tasks"), and
instance i's arguments (``resolve``), as Airflow's ``_expand_mapped_kwargs`` does:

- several ``expand`` arguments: their cross product, the LAST argument varying fastest (Airflow's
  ``DictOfListsExpandInput._expand_mapped_field``); a dict maps to its ``(key, value)`` pairs in order;
- ``expand_kwargs``: element i of the list of dicts (each dict, or an XComArg resolving to one);
- an XComArg of a mapped task resolves to its instances' values in map order (``LazyXComSequence``).

``resolve`` also names the arguments whose values came from upstream XComs: the instance's operator never
renders them (Airflow's ``resolved_oids``; ``Templater.keep_unrendered``), where literal ones are rendered.

``MappedArgument`` is a mapped task group function's parameter inside the group: instance i of a task of the
group resolves it to instance i's element.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence, Sized
from typing import Any

from kdag_runner.airflow.xcom_arg import (
    ConcatXComArg,
    MapXComArg,
    ResolveMixin,
    XComArg,
    XComSource,
    ZipXComArg,
)
from kdag_runner.airflow.xcom_arg_results import NOTSET


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

    def resolve(self, map_index: int, context: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
        """The arguments of instance ``map_index`` (the cross product, the last argument fastest), and the
        names of those that came from XComs."""
        resolved = {k: v.resolve(context) if isinstance(v, XComArg) else v for k, v in self.value.items()}
        from_xcoms = {k for k, v in self.value.items() if isinstance(v, XComArg)}
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
        return data, from_xcoms


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

    def resolve(self, map_index: int, context: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
        """The i-th dict, and the names of its arguments that came from XComs (all, unless the dict is the
        DAG file's: an XComArg inside it is resolved, and kept unrendered, by ``unmap``)."""
        from_xcom = True
        if isinstance(self.value, XComArg):
            mappings = self.value.resolve(context)
            if not isinstance(mappings, Sequence) or isinstance(mappings, str):
                raise ValueError(f"expand_kwargs() expects a list[dict], not {_describe(mappings)}")
            mapping = mappings[map_index]
        else:
            mapping = self.value[map_index]
            if isinstance(mapping, XComArg):
                mapping = mapping.resolve(context)
            else:
                from_xcom = False
        if not isinstance(mapping, Mapping):
            raise ValueError(f"expand_kwargs() expects a list[dict], not list[{_describe(mapping)}]")
        for key in mapping:
            if not isinstance(key, str):
                raise ValueError(
                    "expand_kwargs() input dict keys must all be str,"
                    f" but {key!r} is of type {_describe(key)}"
                )
        return dict(mapping), set(mapping) if from_xcom else set()


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


class MappedArgument(ResolveMixin):
    """A parameter of a mapped task group's function, inside the group (Airflow's ``MappedArgument``): in
    instance i of a task of the group it resolves to instance i's element of what the group expands over.
    A task given one depends on the tasks whose XComs the group expands over (``find_xcom_args``)."""

    def __init__(self, expand_input: ExpandInput, key: str) -> None:
        self.expand_input = expand_input
        self.key = key

    def __repr__(self) -> str:
        return f"MappedArgument({self.key!r})"

    def iter_references(self) -> Iterator[tuple[XComSource, str]]:
        yield from self.expand_input.references()

    def resolve(self, context: Mapping[str, Any] | Any) -> Any:
        """Instance ``ti.map_index``'s value of the argument."""
        ti = context["ti"] if isinstance(context, Mapping) else context
        map_index = getattr(ti, "map_index", -1)
        if map_index is None or map_index < 0:
            raise RuntimeError("can't resolve task-mapping argument without expanding")
        known = context if isinstance(context, Mapping) else {"ti": ti}
        data, _ = self.expand_input.resolve(map_index, known)
        return data[self.key]
