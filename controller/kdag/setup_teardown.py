"""Setup and teardown tasks, pure: what they add to trigger rules (Airflow 3's setup constraint and
teardown scope; docs/design.md, "Setup and teardown tasks")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kdag.api.models import TaskSpec


@dataclass(frozen=True)
class SetupScope:
    """What setup and teardown tasks add to trigger rules (empty for a DAG without them)."""

    indirect_setups: dict[str, tuple[str, ...]]
    """Work task -> its relevant setups that are not directly upstream: all must succeed first."""
    teardown_scope: dict[str, tuple[str, ...]]
    """Teardown -> tasks between its setups and it, not directly upstream: all must finish first."""


def setup_scope(tasks: Sequence[TaskSpec], order: Sequence[str]) -> SetupScope:
    """Airflow's setup constraint (`get_upstreams_only_setups`) and teardown scope, per task.

    A setup S is relevant to a work task T when S is an ancestor of T and S has no teardown, or one of S's
    teardowns is downstream of T. T waits for its relevant setups that are not its direct upstream tasks
    to succeed; one failed makes T UpstreamFailed, one skipped makes it Skipped. A teardown waits, before
    it runs, for every task that is both downstream of one of its direct setups and upstream of it.
    """
    if not any(task.is_setup or task.is_teardown for task in tasks):
        return SetupScope({}, {})
    by_id = {task.id: task for task in tasks}
    downstream: dict[str, list[str]] = {tid: [] for tid in by_id}
    for task in tasks:
        for up in task.upstream_ids:
            downstream[up].append(task.id)
    above: dict[str, frozenset[str]] = {}
    for tid in order:
        ups = by_id[tid].upstream_ids
        above[tid] = frozenset(ups).union(*(above[up] for up in ups))
    below: dict[str, frozenset[str]] = {}
    for tid in reversed(order):
        below[tid] = frozenset(downstream[tid]).union(*(below[d] for d in downstream[tid]))
    teardowns_of = {tid: {d for d in downstream[tid] if by_id[d].is_teardown} for tid in by_id}
    indirect: dict[str, tuple[str, ...]] = {}
    scope: dict[str, tuple[str, ...]] = {}
    for tid in order:
        task = by_id[tid]
        direct = set(task.upstream_ids)
        if task.is_teardown:
            setups = [up for up in task.upstream_ids if by_id[up].is_setup]
            between: set[str] = set()
            for setup in setups:
                between |= (above[tid] - direct) & below[setup]
            if between:
                scope[tid] = tuple(t for t in order if t in between)
            continue
        below_teardowns = {d for d in below[tid] if by_id[d].is_teardown}
        relevant = [
            s
            for s in order
            if s in above[tid]
            and by_id[s].is_setup
            and s not in direct
            and (not teardowns_of[s] or teardowns_of[s] & below_teardowns)
        ]
        if relevant:
            indirect[tid] = tuple(relevant)
    return SetupScope(indirect, scope)
