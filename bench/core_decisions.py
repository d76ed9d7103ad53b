"""Time the controller's pure decisions on a 100-task DAG: `graph.decide`, `render_task_pod`, model parsing.

    .venv/bin/python bench/core_decisions.py

Each is what one reconcile pass of a run (or one pod creation) spends before any API call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from kdag import graph
from kdag.api.models import DAGSpec, TaskPhase
from kdag.render import RunInfo, render_task_pod
from kdag.settings import ControllerSettings
from kdag.task_state import TaskState

TASKS = 100
REPEAT = 200


def per_call_ms(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(REPEAT):
        work()
    return (time.perf_counter() - start) / REPEAT * 1e3


def main() -> None:
    # Each task depends on the three before it: a long, wide chain with many ancestors at the end.
    tasks = [
        {"id": f"t{i}", "command": ["true"], "upstream": [f"t{j}" for j in range(max(0, i - 3), i)]}
        for i in range(TASKS)
    ]
    dag = DAGSpec.model_validate({"tasks": tasks})
    states = {f"t{i}": TaskState(TaskPhase.SUCCEEDED) for i in range(TASKS // 2)}
    now = datetime.now(UTC)
    settings = ControllerSettings()
    run = RunInfo(namespace="ns", dag_name="d", name="d-1", uid="u", logical_date=now, dag=dag)
    last = dag.resolved_task(f"t{TASKS - 1}", settings.runner_image)

    def render() -> object:
        return render_task_pod(
            run=run, task=last, taskrun_name="x", taskrun_uid="u", attempt=1, settings=settings
        )

    decide_ms = per_call_ms(lambda: graph.decide(dag.tasks, states, now))
    print(f"graph.decide, {TASKS} tasks, half finished: {decide_ms:.3f} ms")
    print(f"render_task_pod, {TASKS - 1} ancestors: {per_call_ms(render):.3f} ms")
    parse_ms = per_call_ms(lambda: DAGSpec.model_validate({"tasks": tasks}))
    print(f"DAGSpec.model_validate, {TASKS} tasks: {parse_ms:.3f} ms")


if __name__ == "__main__":
    main()
