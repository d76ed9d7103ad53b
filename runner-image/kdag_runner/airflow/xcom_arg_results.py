"""What ``map()``, ``zip()`` and ``concat()`` XComArgs (``xcom_arg.py``) resolve to in a mapped instance.

As Airflow 3's ``_MapResult``, ``_ZipResult`` and ``_ConcatResult``: sequences whose elements are computed
only when taken, so a map function runs for the instance's element alone (an ``AirflowSkipException``
there skips that instance). Their lengths are what the controller computes from the upstream tasks'
reported XCom lengths (``length_expression`` in ``expand_input.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any


class _NotSetType:
    def __repr__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSetType()
"""No ``fillvalue`` given to ``zip``."""


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
