"""The answers to a task's questions about other runs (`kdag.questions`), when its next attempt starts:
read what the questions need (the DAGRun a TriggerDagRunOperator made; the namespace's DAGs and DAGRuns for
an ExternalTaskSensor), once per attempt, and let the pure modules answer. A waiting task's pokes are these
reads: no watch, no cache, nothing read for a task that asked nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from kdag import questions
from kdag.kube import DAG, DAGRUN, JSONObject, KubeApi


async def answers_for(
    api: KubeApi, namespace: str, asked: questions.Asked, try_number: int
) -> dict[str, dict[str, Any]]:
    """The answer variables of the next attempt (of try `try_number`) of a task that asked `asked`."""
    run_name, other_runs = questions.needs(asked, try_number)
    triggered = await api.get(DAGRUN, namespace, run_name) if run_name else None
    dags: list[JSONObject] = []
    dagruns: list[JSONObject] = []
    if other_runs:
        dags, dagruns = await asyncio.gather(api.list(DAG, namespace), api.list(DAGRUN, namespace))
    return questions.answers(
        asked, try_number, namespace=namespace, triggered_run=triggered, dags=dags, dagruns=dagruns
    )
