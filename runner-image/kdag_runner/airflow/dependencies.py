"""`>>` and `<<` for everything that takes part in dependencies: tasks, task groups, XComArgs, edge labels.

Each of those says what `set_upstream`/`set_downstream` mean for it; the operators are the same for all,
as in Airflow's DependencyMixin, so they are written once here.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar


class Relatable(Protocol):
    """What the operators need: a way to put something upstream or downstream of this."""

    def set_upstream(self, other: Any, edge_modifier: Any = None) -> None: ...

    def set_downstream(self, other: Any, edge_modifier: Any = None) -> None: ...


R = TypeVar("R", bound=Relatable)


class DependencyMixin:
    """`a >> b`, `a << b`, and `[a, b] >> c` (lists have no `>>`, so Python asks the right operand)."""

    def __rshift__(self: Relatable, other: Any) -> Any:
        self.set_downstream(other)
        return other

    def __lshift__(self: Relatable, other: Any) -> Any:
        self.set_upstream(other)
        return other

    def __rrshift__(self: R, other: Any) -> R:
        self.set_upstream(other)
        return self

    def __rlshift__(self: R, other: Any) -> R:
        self.set_downstream(other)
        return self
