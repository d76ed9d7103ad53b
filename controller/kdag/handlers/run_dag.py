"""The DAG a run follows (`dag_of`): its snapshot once the run started, else the DAG as it is now, with the
run's params checked against its schemas. A run without one stays Pending and Stalled (`InvalidDAG`,
`InvalidParams`), with a Warning Event saying why.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kdag_runner import keys

from kdag import conditions, params
from kdag.api.models import DAGRunStatus, DAGSpec, RunPhase
from kdag.api.validation import parse_dag_spec
from kdag.handlers import events
from kdag.handlers.runtime import Runtime
from kdag.kube import DAG, DAGRUN, JSONObject, KubeApi


async def dag_of(runtime: Runtime, dagrun: JSONObject) -> DAGSpec | None:
    """The DAG spec the run follows; None when it has none, after stalling the run with the reason."""
    dag, problem = await _load_dag(runtime.api, dagrun)
    if dag is None:
        await _stall(runtime, dagrun, "InvalidDAG", problem)
        return None
    status = dagrun.get("status") or {}
    if not status.get("dag"):
        # Not started: its params must satisfy the DAG's schemas (kdag trigger checked them; kubectl did not).
        spec = dagrun.get("spec") or {}
        wrong = params.run_param_problems(dag, spec.get("params"), spec.get("conf"))
        if wrong:
            await _stall(runtime, dagrun, "InvalidParams", params.describe(wrong))
            return None
    return dag


async def _load_dag(api: KubeApi, dagrun: JSONObject) -> tuple[DAGSpec | None, str]:
    """The DAG spec of the run: its snapshot, or the DAG as it is now; else why there is none."""
    snapshot = (dagrun.get("status") or {}).get("dag")
    if snapshot:
        return DAGSpec.model_validate(snapshot), ""
    namespace = dagrun["metadata"]["namespace"]
    dag_name = str(((dagrun.get("spec") or {}).get("dagRef") or {}).get("name") or "")
    dag = await api.get(DAG, namespace, dag_name)
    if dag is None:
        return None, f"spec.dagRef.name: DAG {dag_name!r} does not exist in namespace {namespace!r}"
    model, problems = parse_dag_spec(dag.get("spec") or {})
    if model is None or problems:
        return None, f"DAG {dag_name!r} is invalid: " + "; ".join(problems)
    return model, ""


async def _stall(runtime: Runtime, dagrun: JSONObject, reason: str, message: str) -> None:
    """The run Pending and Stalled with `reason` and `message`, and a Warning Event, when that is new."""
    status = dagrun.get("status") or {}
    meta = dagrun["metadata"]
    wanted = conditions.merge_conditions(
        status.get("conditions"),
        conditions.invalid_conditions(reason, message),
        meta.get("generation"),
        datetime.now(UTC).replace(microsecond=0),
    )
    stalled = DAGRunStatus(phase=RunPhase.PENDING, conditions=wanted)
    if stalled.to_patch()["conditions"] != status.get("conditions"):
        await runtime.api.patch_status(DAGRUN, meta["namespace"], meta["name"], stalled.to_patch())
        events.post(runtime, keys.DAGRUN_KIND, dagrun, "Warning", reason, message)
