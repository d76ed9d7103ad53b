"""The answers to a task's questions about other runs (`kdag.questions`), when its next attempt starts:
read what the questions need (the DAGRun a TriggerDagRunOperator made; the namespace's DAGs and DAGRuns for
an ExternalTaskSensor, and the DAG versions the runs asked about follow), once per attempt, and let the pure
modules answer. A waiting task's pokes are these reads: no watch, nothing read for a task that asked
nothing; the DAG versions come from the controller's cache (`kdag.dag_versions`)."""

from __future__ import annotations

import asyncio
from typing import Any

from kdag import dag_versions, external_runs, questions
from kdag.handlers.runtime import Runtime
from kdag.kube import DAG, DAGRUN, JSONObject


async def answers_for(
    runtime: Runtime, namespace: str, asked: questions.Asked, try_number: int
) -> dict[str, dict[str, Any]]:
    """The answer variables of the next attempt (of try `try_number`) of a task that asked `asked`."""
    api = runtime.api
    run_name, other_runs = questions.needs(asked, try_number)
    triggered = await api.get(DAGRUN, namespace, run_name) if run_name else None
    dags: list[JSONObject] = []
    dagruns: list[JSONObject] = []
    version_tasks: dict[str, list[str]] = {}
    if other_runs and asked.external_runs is not None:
        dags, dagruns = await asyncio.gather(api.list(DAG, namespace), api.list(DAGRUN, namespace))
        for run in external_runs.asked_runs(asked.external_runs, dags, dagruns):
            version = dag_versions.run_version(run)
            if version is None or version in version_tasks:
                continue
            dag_name = str(run["spec"]["dagRef"]["name"])
            try:
                spec = await dag_versions.read(api, runtime.dag_versions, namespace, version, dag_name)
            except dag_versions.VersionError:
                continue  # that run's undecided tasks are not reported: it fails on its own pass
            version_tasks[version] = [task.id for task in spec.tasks]
    return questions.answers(
        asked,
        try_number,
        namespace=namespace,
        triggered_run=triggered,
        dags=dags,
        dagruns=dagruns,
        version_tasks=version_tasks,
    )
