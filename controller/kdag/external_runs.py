"""An ExternalTaskSensor's question about another DAG's runs, answered from data (docs/design.md, "Waiting
for another DAG").

A poke reports its question (`externalRuns` of the report: `parse_query`); `settle` records it in the
TaskRun's `status.externalRuns` (`kdag.questions`), and when the next attempt starts its `KDAG_EXTERNAL_RUNS`
is `answer`: the question answered, whether the DAG, the tasks and the task group exist, and the newest run
of the DAG at each logical date asked, with its state and the asked tasks' states as Airflow names them,
counted per task instance. The controller reads DAGRuns and the DAG versions they follow (`asked_runs`,
`cluster_answer`, `run_facts`); `kdag run --local` makes the same facts of the runs it made. The sensor
counts them as Airflow does (`kdag_runner/airflow/external_task.py`): the controller only reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from kdag import triggers
from kdag.api.models import ExternalRunsQuery, RunPhase, TaskPhase
from kdag.render import format_time, parse_time

AIRFLOW_TASK_STATE: dict[TaskPhase, str] = {
    TaskPhase.SUCCEEDED: "success",
    TaskPhase.FAILED: "failed",
    TaskPhase.UPSTREAM_FAILED: "upstream_failed",
    TaskPhase.SKIPPED: "skipped",
    TaskPhase.RUNNING: "running",
    TaskPhase.RETRYING: "up_for_retry",
    TaskPhase.UP_FOR_RESCHEDULE: "up_for_reschedule",
    TaskPhase.PENDING: "queued",
}
"""A task's phase as Airflow names a task instance's state."""
NOT_STARTED = "none"
"""A task instance with no state yet (Airflow's None): a task not decided yet, an instance not started."""


@dataclass(frozen=True)
class RunFacts:
    """What a sensor may learn of one run of the other DAG."""

    run_id: str
    logical_date: datetime
    state: str
    """The run's state as Airflow names it (`queued`, `running`, `success`, `failed`)."""
    tasks: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Every task of the run: its instances by Airflow state (one for a task that is not mapped)."""
    created: str = ""
    """When the run was made (RFC 3339): of several runs at one logical date, the newest counts."""


def parse_query(value: object) -> tuple[ExternalRunsQuery | None, str]:
    """The question in a report, or why the report is refused ("" when it is fine)."""
    problem = "invalid termination report: externalRuns "
    if not isinstance(value, Mapping):
        return None, problem + f"must be an object, got {value!r:.200}"
    try:
        query = ExternalRunsQuery.model_validate(value)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return None, problem + f"{where}: {first['msg']}"
    return query, ""


def asked(query: ExternalRunsQuery) -> dict[str, Any]:
    """The question as the sensor spells it (times RFC 3339 UTC, to the second): the answer repeats it, so
    a poke can tell an answer to an earlier question."""
    spelled: dict[str, Any] = {"dagId": query.dag_id}
    if query.task_ids:
        spelled["taskIds"] = list(query.task_ids)
    if query.task_group_id:
        spelled["taskGroupId"] = query.task_group_id
    spelled["logicalDates"] = [format_time(d) for d in query.logical_dates]
    return spelled


def answer(
    query: ExternalRunsQuery, dag_tasks: Sequence[str] | None, runs: Iterable[RunFacts]
) -> dict[str, Any]:
    """`KDAG_EXTERNAL_RUNS`: the question, what exists (`dag_tasks`: the DAG's task ids as it is now, None
    when no DAG has the dag id) and the newest run at each logical date asked, with the asked tasks (a
    task group's: the DAG's tasks whose ids its prefix begins) in the states of their instances."""
    dates = {format_time(d) for d in query.logical_dates}
    newest: dict[str, RunFacts] = {}
    for run in runs:
        date = format_time(run.logical_date)
        if date in dates and (date not in newest or run.created >= newest[date].created):
            newest[date] = run
    result: dict[str, Any] = {"asked": asked(query), "dagExists": dag_tasks is not None}
    shown: list[str] = []
    if query.task_ids:
        shown = list(query.task_ids)
        if dag_tasks is not None:
            result["missingTasks"] = [t for t in shown if t not in dag_tasks]
    elif query.task_group_id:
        prefix = query.task_group_id + "."
        shown = [t for t in dag_tasks or () if t.startswith(prefix)]
        if dag_tasks is not None:
            result["groupExists"] = bool(shown)
    result["runs"] = [
        {
            "runId": run.run_id,
            "logicalDate": date,
            "state": run.state,
            "tasks": {t: dict(run.tasks[t]) for t in shown if t in run.tasks},
        }
        for date, run in sorted(newest.items())
    ]
    return result


def run_facts(dagrun: Mapping[str, Any], dag_tasks: Sequence[str] = ()) -> RunFacts | None:
    """The facts of a DAGRun: its phase, and each task of the DAG version it follows (`dag_tasks`, its task
    ids) with the states of its instances (`status.tasks`, and `status.mapped` for a mapped task that
    expanded). None: a run without a time."""
    meta = dagrun.get("metadata") or {}
    spec = dagrun.get("spec") or {}
    status = dagrun.get("status") or {}
    when = spec.get("logicalDate") or meta.get("creationTimestamp")
    if not when:
        return None
    phases: Mapping[str, str] = status.get("tasks") or {}
    mapped: Mapping[str, Any] = status.get("mapped") or {}
    tasks: dict[str, dict[str, int]] = {}
    for task_id in dict.fromkeys([*dag_tasks, *phases]):
        if task_id in mapped:
            counts = _states((mapped[task_id] or {}).get("phases") or {})
            unstarted = int((mapped[task_id] or {}).get("length") or 0) - sum(counts.values())
            if unstarted > 0:
                counts[NOT_STARTED] = counts.get(NOT_STARTED, 0) + unstarted
            tasks[task_id] = counts
        else:
            tasks[task_id] = _states({phases[task_id]: 1}) if task_id in phases else {NOT_STARTED: 1}
    phase = status.get("phase") or RunPhase.PENDING
    return RunFacts(
        run_id=str(meta.get("name") or ""),
        logical_date=parse_time(when),
        state=triggers.AIRFLOW_RUN_STATE.get(RunPhase(phase), "queued"),
        tasks=tasks,
        created=str(meta.get("creationTimestamp") or ""),
    )


def _states(phases: Mapping[str, int]) -> dict[str, int]:
    """Instances by phase -> by Airflow state (a phase kdag does not know counts as not started)."""
    known = {phase.value: state for phase, state in AIRFLOW_TASK_STATE.items()}
    counts: dict[str, int] = {}
    for phase, n in phases.items():
        state = known.get(phase, NOT_STARTED)
        counts[state] = counts.get(state, 0) + int(n)
    return counts


def asked_runs(
    query: ExternalRunsQuery, dags: Sequence[Mapping[str, Any]], dagruns: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The DAGRuns `cluster_answer` reports on: those of the one DAG with the dag id asked, not being
    deleted, at a logical date asked (the caller reads the DAG version each follows, for `version_tasks`)."""
    found = [dag for dag in dags if triggers.dag_id_of(dag) == query.dag_id]
    if len(found) != 1:
        return []
    name = found[0]["metadata"]["name"]
    dates = {format_time(d) for d in query.logical_dates}
    return [
        r
        for r in dagruns
        if ((r.get("spec") or {}).get("dagRef") or {}).get("name") == name
        and not (r.get("metadata") or {}).get("deletionTimestamp")
        and (when := _when(r)) is not None
        and format_time(when) in dates
    ]


def _when(dagrun: Mapping[str, Any]) -> datetime | None:
    """A run's logical date (its creation time when it gives none)."""
    when = (dagrun.get("spec") or {}).get("logicalDate") or (dagrun.get("metadata") or {}).get(
        "creationTimestamp"
    )
    return parse_time(when) if when else None


def cluster_answer(
    query: ExternalRunsQuery,
    dags: Sequence[Mapping[str, Any]],
    dagruns: Sequence[Mapping[str, Any]],
    namespace: str,
    version_tasks: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """`answer` from the DAGs and DAGRuns of the sensor's namespace: the DAG by dag id (several sharing it:
    an error, naming them), its runs at the dates asked (`asked_runs`). `version_tasks`: the task ids of
    the DAG version each run follows, by DAGVersion name (`status.dagVersion`); a run's tasks not decided
    yet are known only from it."""
    found = [dag for dag in dags if triggers.dag_id_of(dag) == query.dag_id]
    if len(found) > 1:
        _, problem = triggers.find_dag(found, query.dag_id, namespace)
        return {"asked": asked(query), "error": problem}
    if not found:
        return answer(query, None, [])
    tasks = [str(t.get("id")) for t in (found[0].get("spec") or {}).get("tasks") or [] if t.get("id")]
    known = version_tasks or {}
    runs = [
        run_facts(r, known.get(str((r.get("status") or {}).get("dagVersion") or ""), ()))
        for r in asked_runs(query, dags, dagruns)
    ]
    return answer(query, tasks, [r for r in runs if r is not None])
