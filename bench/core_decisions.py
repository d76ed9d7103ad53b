"""Time the controller's pure decisions as a DAG grows: `graph.decide`, `render_task_pod`, model parsing,
and the webhook's whole-graph validation.

    .venv/bin/python bench/core_decisions.py [--tasks 100 1000 5000]

Each is what one reconcile pass of a run (or one pod creation, or one admission) spends before any API call.
Two shapes per size: a long, wide chain (each task depends on the three before it, so the last task has every
other task as an ancestor) and a fan-in (every task feeds one join task: a join with N-1 upstream tasks).
Per-call times growing in proportion to N mean a run's total cost grows as N^2 (N tasks, one pass per task
event); the table says which does.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kdag import graph
from kdag.api.models import DAGSpec, TaskPhase
from kdag.api.validation import check_dag_spec
from kdag.render import RunInfo, render_task_pod
from kdag.settings import ControllerSettings
from kdag.task_state import TaskState


def per_call_ms(work: Callable[[], object], budget_s: float = 1.0) -> float:
    """Mean milliseconds per call, repeating for about `budget_s` (at least 3 calls)."""
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < budget_s:
        work()
        calls += 1
    return (time.perf_counter() - start) / calls * 1e3


def chain(n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"t{i}", "command": ["true"], "upstream": [f"t{j}" for j in range(max(0, i - 3), i)]}
        for i in range(n)
    ]


def fan_in(n: int) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = [{"id": f"t{i}", "command": ["true"]} for i in range(n - 1)]
    tasks.append({"id": "join", "command": ["true"], "upstream": [f"t{i}" for i in range(n - 1)]})
    return tasks


def measure(shape: str, tasks: list[dict[str, Any]]) -> dict[str, float]:
    n = len(tasks)
    dag = DAGSpec.model_validate({"tasks": tasks})
    states = {t.id: TaskState(TaskPhase.SUCCEEDED) for t in dag.tasks[: n // 2]}
    now = datetime.now(UTC)
    settings = ControllerSettings()
    run = RunInfo(namespace="ns", dag_name="d", name="d-1", uid="u", logical_date=now, dag=dag)
    last = dag.resolved_task(dag.tasks[-1].id, settings.runner_image)

    def render() -> object:
        return render_task_pod(
            run=run, task=last, taskrun_name="x", taskrun_uid="u", attempt=1, settings=settings
        )

    return {
        "decide": per_call_ms(lambda: graph.decide(dag.tasks, states, now)),
        "render": per_call_ms(render),
        "parse": per_call_ms(lambda: DAGSpec.model_validate({"tasks": tasks})),
        "validate": per_call_ms(lambda: check_dag_spec({"tasks": tasks})),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[100, 1000, 5000])
    args = parser.parse_args()
    print(
        "| shape | tasks | graph.decide (half done) | render_task_pod (last task) | DAGSpec parse"
        " | webhook validation |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for n in args.tasks:
        for shape, tasks in (("chain", chain(n)), ("fan-in", fan_in(n))):
            ms = measure(shape, tasks)
            print(
                f"| {shape} | {n:,} | {ms['decide']:.2f} ms | {ms['render']:.2f} ms | {ms['parse']:.2f} ms"
                f" | {ms['validate']:.2f} ms |"
            )


if __name__ == "__main__":
    main()
