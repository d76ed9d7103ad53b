"""A run's phase from its tasks' phases, pure: Airflow's `DagRun.update_state`, in which teardowns do not
count unless they fail the run (`run_leaves`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kdag.api.models import RunPhase, TaskPhase, TaskSpec
from kdag.topology import leaves


def _ignorable(task: TaskSpec) -> bool:
    """A teardown whose failure does not count for the run's state (no failRunOnFailure)."""
    return task.is_teardown and not task.fail_run_on_failure


def run_leaves(tasks: Sequence[TaskSpec]) -> list[str]:
    """The tasks whose states decide the run's (Airflow's effective leaves, `DagRun._tis_for_dagrun_state`).

    A task counts when it is not an ignorable teardown and every task directly downstream of it is one: so
    a work task followed only by its teardown counts, and the teardown does not. A teardown with
    failRunOnFailure counts as any task. A DAG of ignorable teardowns only falls back to `leaves`.
    """
    by_id = {task.id: task for task in tasks}
    downstream: dict[str, list[str]] = {task.id: [] for task in tasks}
    for task in tasks:
        for up in task.upstream_ids:
            if up in downstream:
                downstream[up].append(task.id)
    found = [
        task.id
        for task in tasks
        if not _ignorable(task) and all(_ignorable(by_id[d]) for d in downstream[task.id])
    ]
    return found or leaves(tasks)


def run_phase(tasks: Sequence[TaskSpec], phases: Mapping[str, TaskPhase]) -> RunPhase:
    """Airflow's run state: Running until every task finished; then Failed if a task of `run_leaves`
    failed or was upstream-failed, else Succeeded (so a teardown's failure alone does not fail the run,
    unless it has failRunOnFailure)."""
    if not all(task.id in phases and phases[task.id].finished for task in tasks):
        return RunPhase.RUNNING
    failing = {TaskPhase.FAILED, TaskPhase.UPSTREAM_FAILED}
    if any(phases[tid] in failing for tid in run_leaves(tasks)):
        return RunPhase.FAILED
    return RunPhase.SUCCEEDED
