"""A TriggerDagRunOperator's request, decided as pure functions (docs/design.md, "Triggering another DAG").

A task pod holds no right to create DAGRuns, so the runner only asks: the first attempt of a try ends up
for reschedule with `triggerDagRun` in its report (`parse_request`), `settle` records it in the TaskRun's
`status.trigger` (`requested`), the DAGRun handler acts on it (`find_dag`, `run_name`, `on_existing`,
`dagrun_to_make`, `resetting`) and starts the next attempt with `KDAG_TRIGGERED_RUN` (`answer`).
`kdag run --local` makes the same request and gives the same answers (`kdag.local.triggers`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from kdag import manifests, names
from kdag.api.models import RunPhase, TriggeredRun, TriggerState
from kdag.render import parse_time

DAG_ID_MAX = 250
_DAG_ID = re.compile(r"[A-Za-z0-9_.-]+")
AIRFLOW_RUN_STATE = {
    RunPhase.PENDING: "queued",
    RunPhase.RUNNING: "running",
    RunPhase.SUCCEEDED: "success",
    RunPhase.FAILED: "failed",
}
"""A DAGRun's phase as Airflow names a DAG run's state (what `allowed_states`/`failed_states` name)."""


@dataclass(frozen=True)
class TriggerRequest:
    """What a TriggerDagRunOperator asked for (the `triggerDagRun` of its attempt's report)."""

    dag_id: str
    conf: Mapping[str, Any]
    run_id: str | None = None
    logical_date: datetime | None = None
    reset: bool = False
    wait: bool = False


def parse_request(value: object) -> tuple[TriggerRequest | None, str]:
    """The request in a report, or why the report is refused ("" when it is fine)."""
    problem = "invalid termination report: triggerDagRun "
    if not isinstance(value, Mapping):
        return None, problem + f"must be an object, got {value!r:.200}"
    dag_id = value.get("dagId")
    if not isinstance(dag_id, str) or len(dag_id) > DAG_ID_MAX or not _DAG_ID.fullmatch(dag_id):
        return None, problem + f"dagId must be a DAG id, got {dag_id!r:.200}"
    conf = value.get("conf")
    if conf is None:
        conf = {}
    if not isinstance(conf, Mapping):
        return None, problem + f"conf must be an object, got {type(conf).__name__}"
    run_id = value.get("runId")
    if run_id is not None and (not isinstance(run_id, str) or not run_id or len(run_id) > DAG_ID_MAX):
        return None, problem + f"runId must be a run id, got {run_id!r:.200}"
    logical_date = None
    if value.get("logicalDate") is not None:
        try:
            logical_date = parse_time(str(value["logicalDate"]))
        except ValueError:
            return None, problem + f"logicalDate must be an RFC 3339 time, got {value['logicalDate']!r:.200}"
    return TriggerRequest(
        dag_id=dag_id,
        conf=dict(conf),
        run_id=run_id,
        logical_date=logical_date,
        reset=value.get("reset") is True,
        wait=value.get("wait") is True,
    ), ""


def requested(request: TriggerRequest, try_number: int) -> TriggeredRun:
    """The TaskRun's `status.trigger` for a request its try just made. Every field is set (None included),
    so the status patch replaces an earlier try's request whole."""
    return TriggeredRun(
        dag_id=request.dag_id,
        run_id=request.run_id,
        run=None,
        try_number=max(try_number, 1),
        state=TriggerState.REQUESTED,
        message=None,
        reset=request.reset,
        conf=dict(request.conf) or None,
        params=None,
        logical_date=request.logical_date,
    )


def find_dag(
    dags: Sequence[Mapping[str, Any]], dag_id: str, namespace: str
) -> tuple[Mapping[str, Any] | None, str]:
    """The DAG object whose dag id (`spec.dagId`, else its name) is `dag_id`, or why there is none."""
    found = [dag for dag in dags if dag_id_of(dag) == dag_id]
    if len(found) == 1:
        return found[0], ""
    if not found:
        return None, f"DAG '{dag_id}' does not exist in namespace '{namespace}' (no DAG has that dag id)"
    objects = ", ".join(sorted(str(d["metadata"]["name"]) for d in found))
    return None, f"DAG '{dag_id}' is ambiguous in namespace '{namespace}': the DAG objects {objects} share it"


def dag_id_of(dag: Mapping[str, Any]) -> str:
    """A DAG object's dag id: `spec.dagId`, else its name."""
    return str((dag.get("spec") or {}).get("dagId") or (dag.get("metadata") or {}).get("name") or "")


def run_name(trigger: TriggeredRun, dag_name: str, taskrun_uid: str) -> str:
    """The DAGRun's name: the task's `trigger_run_id` as a Kubernetes name, else one per TaskRun."""
    if trigger.run_id:
        return names.run_name_of(trigger.run_id)
    return names.triggered_run_name(dag_name, taskrun_uid)


Existing = Literal["ours", "exists", "reset", "deleting"]


def on_existing(existing: Mapping[str, Any], trigger: TriggeredRun, taskrun_uid: str) -> Existing:
    """What a DAGRun of the wanted name that exists already means for the request.

    `ours`: this TaskRun made it (in this try; or in an earlier one and `reset_dag_run` is off: a retried
    task finds its run again, never makes a second); `reset`: make it again (`reset_dag_run`);
    `exists`: someone else's run (Airflow's DagRunAlreadyExists); `deleting`: being deleted, look again.
    """
    meta = existing.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "deleting"
    labels = meta.get("labels") or {}
    ours = labels.get(names.TRIGGERED_BY_UID_LABEL) == taskrun_uid
    if ours and labels.get(names.TRIGGERED_TRY_LABEL) == str(trigger.try_number):
        return "ours"
    if trigger.reset:
        return "reset"
    return "ours" if ours else "exists"


def resetting(trigger: TriggeredRun, existing: Mapping[str, Any]) -> TriggeredRun:
    """The request once the run that exists is being deleted: it is made again with its own conf, params and
    logical date (Airflow's reset clears a run and keeps them)."""
    spec = existing.get("spec") or {}
    logical = spec.get("logicalDate") or (existing.get("metadata") or {}).get("creationTimestamp")
    return trigger.model_copy(
        update={
            "state": TriggerState.RESETTING,
            "conf": spec.get("conf") or None,
            "params": spec.get("params") or None,
            "logical_date": parse_time(logical) if logical else trigger.logical_date,
        }
    )


def dagrun_to_make(
    trigger: TriggeredRun,
    dag: Mapping[str, Any],
    run: str,
    taskrun_name: str,
    taskrun_uid: str,
    namespace: str,
) -> dict[str, Any]:
    """The DAGRun manifest, labelled with the TaskRun (and try) that asked: how `on_existing` knows it.

    Owned by the DAG it runs, like the runs of `kdag trigger` and of the schedule: deleting that DAG removes
    it. Not by the asking TaskRun: the triggered run outlives the run that asked (Airflow keeps it too)."""
    meta = dag.get("metadata") or {}
    dag_name = str(meta.get("name"))
    return manifests.dagrun_manifest(
        dag_name,
        run,
        logical_date=trigger.logical_date,
        params=trigger.params,
        conf=trigger.conf,
        namespace=namespace,
        owner_uid=str(meta["uid"]) if meta.get("uid") else None,
        extra_labels={
            names.TRIGGERED_BY_LABEL: names.label_value(taskrun_name),
            names.TRIGGERED_BY_UID_LABEL: taskrun_uid,
            names.TRIGGERED_TRY_LABEL: str(trigger.try_number),
        },
    )


def for_attempt(trigger: TriggeredRun | None, try_number: int) -> Literal["ask", "wait", "answer"]:
    """What the next attempt, of try `try_number`, gets: nothing (`ask`: no request of its try, the runner
    asks), to wait (`wait`: the controller has not acted on its try's request yet), or `answer`."""
    if trigger is None or trigger.try_number != try_number:
        return "ask"
    if trigger.state in (TriggerState.REQUESTED, TriggerState.RESETTING):
        return "wait"
    return "answer"


def answer(trigger: TriggeredRun, run: Mapping[str, Any] | None) -> dict[str, Any]:
    """`KDAG_TRIGGERED_RUN` of the next attempt, from the request and the triggered DAGRun as it is now."""
    if trigger.state == TriggerState.FAILED:
        return {"error": trigger.message or f"DAG '{trigger.dag_id}' could not be triggered"}
    if trigger.state == TriggerState.EXISTS:
        return {"runId": trigger.run, "exists": True}
    if run is None:
        return {"error": f"DAGRun '{trigger.run}' of DAG '{trigger.dag_id}' no longer exists"}
    phase = (run.get("status") or {}).get("phase") or RunPhase.PENDING
    return {"runId": trigger.run, "state": AIRFLOW_RUN_STATE.get(RunPhase(phase), "queued")}
